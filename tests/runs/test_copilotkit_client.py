"""CopilotKit's own browser client (`CopilotKitCore` from @copilotkit/core, pinned in
tests/node/package.json) against the live service's `/copilotkit` routes, under Node, as the
README's `<CopilotKit runtimeUrl=…>` runs it in the page: history after a reload in stored
order, Stop that stops the service's run, and what the app is told when the session is
refused."""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import fake_openai
from tests.node_project import NodeProject
from tests.runs.conftest import Service, new_agent
from tests.runs.test_runs import wait_for_status

pytestmark = pytest.mark.asyncio(loop_scope="session")

SCRIPT = "copilotkit_client.mjs"


async def client(
    node_project: NodeProject,
    service: Service,
    scenario: str,
    agent_id: str,
    thread_id: str,
    token: str | None = None,
    *extra: str,
) -> dict[str, Any]:
    token = token or service.clerk.token("user_runner", "org_runs", "admin")
    runtime_url = f"{service.base_url}/copilotkit"
    arguments = [scenario, runtime_url, token, agent_id, thread_id, *extra]
    command: list[str | Path] = [node_project.node, SCRIPT, *arguments]
    async with asyncio.timeout(60):
        result = await node_project.run_async(command)
    assert result.returncode == 0, result.stderr
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def stored(service: Service, thread_id: str) -> list[tuple[str, str, str]]:
    rows = service.rows(
        "SELECT coalesce(external_id, id::text), role, content FROM messages "
        "WHERE conversation_id = %s ORDER BY created_at, id",
        thread_id,
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def test_a_reloaded_page_shows_the_thread_in_stored_order_before_any_run(
    http: httpx.AsyncClient, service: Service, node_project: NodeProject
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()

    chat = await client(node_project, service, "chat", agent_id, thread)

    assert chat["errors"] == []
    assert chat["connected"] == []  # a new thread: nothing to restore
    in_service = stored(service, thread)
    assert [(m["id"], m["role"], m["content"]) for m in chat["messages"]] == in_service
    assert [role for _, role, _ in in_service] == ["user", "assistant", "user", "assistant"]
    assert in_service[0] == ("ck-u1", "user", "Hello from CopilotKit")

    # A reload, or another instance of the app: a new client, which connects first.
    reloaded = await client(node_project, service, "reload", agent_id, thread)

    assert reloaded["errors"] == []
    assert [(m["id"], m["role"], m["content"]) for m in reloaded["messages"]] == in_service
    # It goes on from there: one more turn, stored once, shown in order.
    after = stored(service, thread)
    assert len(after) == 6 and after[:4] == in_service and after[4][0] == "ck-u3"
    assert [(m["id"], m["role"], m["content"]) for m in reloaded["continued"]] == after


async def test_stop_cancels_the_run_in_the_service_with_the_text_the_client_shows(
    http: httpx.AsyncClient, service: Service, node_project: NodeProject
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()

    stopped = await client(node_project, service, "stop", agent_id, thread)

    assert stopped["errors"] == []  # a stop the user asked for is not an error
    assert stopped["isRunning"] is False
    answer = stopped["answer"]
    _, content, *_ = await wait_for_status(service, answer["id"], "cancelled")
    assert content == answer["content"]
    assert 3 <= len(content) < 200  # the fake model's slow answer is 200 tokens of "t"


async def test_a_session_refused_mid_chat_reaches_the_app_as_a_run_error_with_a_code(
    http: httpx.AsyncClient, service: Service, node_project: NodeProject
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    expired = service.clerk.token("user_runner", "org_runs", exp=int(time.time()) - 3600)

    refused = await client(node_project, service, "refused", agent_id, thread, None, expired)

    assert [(e["code"], e["errorCode"], e["message"]) for e in refused["errors"]] == [
        ("agent_run_error_event", "unauthenticated", "Invalid session token")
    ]
    assert refused["errors"][0]["runtimeErrorCode"] == "unauthenticated"
    assert stored(service, thread) == []  # nothing was written for the refused run


async def test_without_a_token_the_client_finds_no_agents(
    http: httpx.AsyncClient, service: Service, node_project: NodeProject
) -> None:
    agent_id = await new_agent(http, service)

    anonymous = await client(node_project, service, "anonymous", agent_id, "-", "-")

    assert anonymous["status"] == "error" and anonymous["agents"] == []
    assert [e["code"] for e in anonymous["errors"]] == ["runtime_info_fetch_failed"]


async def test_another_organizations_thread_is_not_restored(
    http: httpx.AsyncClient, service: Service, node_project: NodeProject
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    await client(node_project, service, "chat", agent_id, thread)
    outsider = service.clerk.token("user_ck_spy", "org_ck_spy", "admin")
    spy_agent = (
        await http.post(
            f"{service.base_url}/agents",
            json={"slug": f"spy-{thread[:8]}", "name": "Spy"},
            headers={"Authorization": f"Bearer {outsider}"},
        )
    ).json()["id"]

    spied = await client(node_project, service, "reload", spy_agent, thread, outsider)

    # Thread ids are unique per organization (migration f4fa07f03acc): to the spy the id is
    # a new chat of their own, empty, as any unused id would be.
    assert (spied["messages"], spied["errors"]) == ([], [])
