"""The README's Next.js + CopilotKit files, copied from the README as they are written and
type-checked with `tsc` (as `next build` does) against the pinned packages of tests/node: a
front end that follows the README compiles."""

import json
import re
from pathlib import Path

from tests.node_project import NodeProject

README = Path(__file__).parents[1] / "README.md"
SECTION = "## Connect a Next.js + CopilotKit app"
BLOCK = re.compile(r"```tsx?\n// (?P<path>[\w./-]+\.tsx?)\n(?P<body>.*?)```", re.DOTALL)
# What create-next-app writes, as far as type-checking goes.
TSCONFIG = {
    "compilerOptions": {
        "target": "ES2017",
        "lib": ["dom", "dom.iterable", "esnext"],
        "strict": True,
        "noEmit": True,
        "esModuleInterop": True,
        "module": "esnext",
        "moduleResolution": "bundler",
        "resolveJsonModule": True,
        "isolatedModules": True,
        "jsx": "react-jsx",
        "skipLibCheck": True,
    },
    "include": ["**/*.ts", "**/*.tsx"],
}


def readme_files() -> dict[str, str]:
    text = README.read_text()
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + len(SECTION))]
    return {
        match["path"]: f"// {match['path']}\n{match['body']}" for match in BLOCK.finditer(section)
    }


def app_folder(tmp_path: Path, node_project: NodeProject, files: dict[str, str]) -> Path:
    folder = tmp_path / "next-app"
    folder.mkdir()
    (folder / "node_modules").symlink_to(node_project.folder / "node_modules")
    (folder / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    for path, body in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(body)
    return folder


def typecheck(node_project: NodeProject, folder: Path) -> str:
    tsc = node_project.folder / "node_modules" / "typescript" / "bin" / "tsc"
    result = node_project.run([node_project.node, tsc, "-p", "tsconfig.json"], cwd=folder)
    return result.stdout + result.stderr if result.returncode else ""


def test_the_readme_shows_the_config_and_both_ways_to_sign_requests() -> None:
    assert set(readme_files()) == {
        "next.config.ts",
        "app/assistant.tsx",
        "app/assistant-cross-origin.tsx",
    }


def test_the_readmes_next_app_files_type_check(tmp_path: Path, node_project: NodeProject) -> None:
    folder = app_folder(tmp_path, node_project, readme_files())
    assert typecheck(node_project, folder) == ""


def test_a_wrong_prop_in_them_fails_to_type_check(
    tmp_path: Path, node_project: NodeProject
) -> None:
    """The check is real: CopilotKit's and Clerk's types resolved, not `any`."""
    files = readme_files()
    broken = {
        **files,
        "app/assistant.tsx": files["app/assistant.tsx"].replace(
            "<CopilotChat threadId={threadId} />", "<CopilotChat threadId={42} />"
        ),
        "app/assistant-cross-origin.tsx": files["app/assistant-cross-origin.tsx"].replace(
            "const fresh = await getToken();", "const fresh: number = await getToken();"
        ),
    }
    assert broken != files
    errors = typecheck(node_project, app_folder(tmp_path, node_project, broken))
    assert "app/assistant.tsx" in errors and "TS2322" in errors
    assert "app/assistant-cross-origin.tsx" in errors
