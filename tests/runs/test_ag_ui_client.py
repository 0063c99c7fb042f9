"""The stream as AG-UI's own client reads it: `HttpAgent` from the npm package @ag-ui/client
(what CopilotKit's runtime uses) runs against the live service under Node. The client checks
the event sequence itself, so a malformed stream fails here."""

import asyncio
import json

import httpx
import pytest

from tests import fake_openai
from tests.node_project import NodeProject
from tests.runs.conftest import Service, new_agent

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_ag_ui_http_agent_reads_the_stream_and_gets_the_history(
    http: httpx.AsyncClient, service: Service, node_project: NodeProject
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    token = service.clerk.token("user_runner", "org_runs", "admin")
    # Not blocking: the service answers on this test's event loop.
    async with asyncio.timeout(60):
        script = await node_project.run_async(
            [
                node_project.node,
                "run_http_agent.mjs",
                f"{service.base_url}/agents/{agent_id}/runs",
                token,
                thread,
            ]
        )
    assert script.returncode == 0, script.stderr
    result = json.loads(script.stdout)

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
