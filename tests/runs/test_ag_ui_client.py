"""The stream as AG-UI's own client reads it: `HttpAgent` from the npm package @ag-ui/client
(what CopilotKit's runtime uses) runs against the live service under Node. The client checks
the event sequence itself, so a malformed stream fails here."""

import asyncio
import json
import shutil
from pathlib import Path

import httpx
import pytest

from tests import fake_openai
from tests.runs.conftest import Service, new_agent

pytestmark = pytest.mark.asyncio(loop_scope="session")

AG_UI_CLIENT = "@ag-ui/client@1.0.0"
SCRIPT = Path(__file__).parent / "node" / "run_http_agent.mjs"


@pytest.fixture(scope="session")
def node_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: the AG-UI client test needs them")
    folder = tmp_path_factory.mktemp("ag-ui-client")
    (folder / "package.json").write_text('{"name": "ag-ui-e2e", "private": true, "type": "module"}')
    import subprocess

    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", AG_UI_CLIENT],
        cwd=folder,
        check=True,
        timeout=300,
    )
    shutil.copy(SCRIPT, folder / SCRIPT.name)
    return folder


async def test_ag_ui_http_agent_reads_the_stream_and_gets_the_history(
    http: httpx.AsyncClient, service: Service, node_project: Path
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    token = service.clerk.token("user_runner", "org_runs", "admin")
    process = await asyncio.create_subprocess_exec(
        "node",
        SCRIPT.name,
        f"{service.base_url}/agents/{agent_id}/runs",
        token,
        thread,
        cwd=node_project,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    result = json.loads(stdout)

    first, second = result["first"], result["second"]
    assert first["events"][0] == "RUN_STARTED" and first["events"][-1] == "RUN_FINISHED"
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][1]["content"] == "Hello from the fake model."
    # The snapshot is the stored thread in order; the client merges it with what it holds
    # (it keeps its own messages where they were), so it ends up with the whole thread.
    first_answer = first["messages"][1]["id"]
    assert second["snapshot"] == ["node-m1", first_answer, "node-m3"]
    assert {m["id"] for m in second["messages"]} >= {"node-m1", first_answer, "node-m3"}
    assert len(second["messages"]) == 4
