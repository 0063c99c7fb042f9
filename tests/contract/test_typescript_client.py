"""A front end's client, generated from the document as front ends do: openapi-typescript
writes the types, openapi-fetch makes the calls, and `tsc --strict` must accept a few calls
a Next.js page makes (their bodies, parameters, answers and problem+json errors) and refuse
wrong ones, which shows the types are real and not `any`."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.main import create_app

PACKAGES = ["openapi-typescript@7.13.0", "openapi-fetch@0.17.0", "typescript@5.9.3"]

CLIENT = """
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Problem = components["schemas"]["Problem"];
const api = createClient<paths>({ baseUrl: "http://127.0.0.1:8000" });
const headers = { Authorization: "Bearer token" };

export async function page(): Promise<string[]> {
  const agents = await api.GET("/agents", { headers });
  const names: string[] = (agents.data ?? []).map((agent) => agent.name);

  const created = await api.POST("/agents", {
    headers,
    body: { slug: "support", name: "Support", capabilities: ["search_knowledge"] },
  });
  if (created.error) {
    const problem: Problem = created.error;
    const where = problem.errors?.[0]?.loc.join(".");
    throw new Error(`${problem.type} ${problem.request_id ?? ""} ${where ?? ""}`);
  }
  const id: string = created.data.id;

  const patched = await api.PATCH("/agents/{agent_id}", {
    headers,
    params: { path: { agent_id: id } },
    body: { description: "Answers support questions" },
  });
  const visibility: "public" | "private" | "hidden" | undefined = patched.data?.visibility;

  const page = await api.GET("/conversations", { headers, params: { query: { limit: 20 } } });
  const next: string | null | undefined = page.data?.next_cursor;

  const catalogue = await api.GET("/organizations/current/agent-catalog", { headers });
  const grantable = (catalogue.data ?? [])
    .filter((entry) => !entry.granted && entry.source !== "own")
    .map((entry) => entry.agent.id);

  return [...names, id, visibility ?? "", next ?? "", ...grantable];
}
"""

# Each must fail type-checking, for the reason in its comment.
WRONG = {
    "body_without_name": """
import createClient from "openapi-fetch";
import type { paths } from "./schema";
const api = createClient<paths>({});
// `name` is required to create an agent
api.POST("/agents", { body: { slug: "support" } });
""",
    "field_that_does_not_exist": """
import createClient from "openapi-fetch";
import type { paths } from "./schema";
const api = createClient<paths>({});
// agents have no `colour`
api.GET("/agents").then(({ data }) => data?.map((agent) => agent.colour));
""",
    "path_without_its_id": """
import createClient from "openapi-fetch";
import type { paths } from "./schema";
const api = createClient<paths>({});
// the agent's id is a path parameter
api.PATCH("/agents/{agent_id}", { body: { name: "x" } });
""",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: the generated client test needs them")
    folder = tmp_path_factory.mktemp("typescript-client")
    (folder / "package.json").write_text('{"name": "client-check", "private": true}')
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", *PACKAGES],
        cwd=folder,
        check=True,
        timeout=300,
    )
    document = create_app(Settings.model_validate({"app_env": "test"})).openapi()
    (folder / "openapi.json").write_text(json.dumps(document))
    subprocess.run(
        ["npx", "openapi-typescript", "openapi.json", "-o", "schema.d.ts"],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return folder


def type_check(project: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    (project / f"{name}.ts").write_text(source)
    return subprocess.run(
        [
            "npx",
            "tsc",
            "--noEmit",
            "--strict",
            "--skipLibCheck",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            f"{name}.ts",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_generated_client_type_checks_the_calls_a_front_end_makes(project: Path) -> None:
    checked = type_check(project, "client", CLIENT)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", sorted(WRONG))
def test_the_generated_types_refuse_a_wrong_call(project: Path, name: str) -> None:
    checked = type_check(project, name, WRONG[name])
    assert checked.returncode != 0, f"{name} type-checked: the types are not real"
    assert "error TS" in checked.stdout, checked.stdout
