"""The README's "Try it", run as a newcomer would paste it: its bash blocks, in order, in one
shell, against `ajc serve` on a fresh embedded database with the development identity and no
model (the labelled no-LLM mode). Each block's output is checked for what the README says
it shows."""

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_openai import free_port

ROOT = Path(__file__).resolve().parents[1]
MARK = "@@block@@"


def try_it_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], int]]:
    folder = tmp_path_factory.mktemp("try-it")
    # The blocks call `.venv/bin/ajc` from the project's root: the same, from a folder of
    # their own (the blocks write a file there).
    (folder / ".venv").symlink_to(Path(sys.prefix))
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "CLERK_", "OPENAI_", "LLM_", "EMBEDDINGS_"))
    }
    env.update(
        DATA_DIR=str(folder / "data"),
        WORKSPACES_DIR=str(folder / "workspaces"),
        LOG_LEVEL="WARNING",
        APP_ENV="development",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)], cwd=folder, env=env
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "ajc serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ajc serve never became ready"
            time.sleep(0.3)
        yield folder, env, port
    finally:
        server.terminate()
        server.wait(60)


def test_every_try_it_block_runs_and_shows_what_the_readme_says(
    served: tuple[Path, dict[str, str], int],
) -> None:
    folder, env, port = served
    blocks = try_it_blocks()
    assert len(blocks) >= 5
    script = "set -euo pipefail\n" + "".join(
        f"echo {MARK}\n{block.replace('127.0.0.1:8000', f'127.0.0.1:{port}')}\n" for block in blocks
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = done.stdout.split(MARK + "\n")[1:]
    assert len(outputs) == len(blocks)
    setup, catalogue, knowledge, run, upload = outputs[:5]
    assert "Seeded" in setup or "agents" in setup.lower(), setup
    assert '"slug":"assistant"' in catalogue and '"source":"platform"' in catalogue
    assert '"granted_at"' in catalogue  # the grant's answer
    assert "25 days of paid holiday" in knowledge and '"citation"' in knowledge
    for event in ("RUN_STARTED", "TEXT_MESSAGE_CONTENT", "RUN_FINISHED"):
        assert event in run, run
    assert '"role":"assistant"' in run  # the stored thread
    assert "Meeting notes: the offsite is in May." in upload
    assert not (folder / "notes.txt").exists()
