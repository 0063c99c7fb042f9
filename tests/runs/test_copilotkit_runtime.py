"""CopilotKit's runtime protocol served by the service (`/copilotkit`), over real HTTP: what
CopilotKit's browser client asks (`info`, `run`, `connect`, `stop`, the thread routes),
answered from the stored conversations for the caller and their organization only.
`test_copilotkit_client.py` drives the same routes with CopilotKit's own client."""

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests import fake_openai
from tests.runs.conftest import Service, new_agent, run_input
from tests.runs.test_runs import types, wait_for_status

pytestmark = pytest.mark.asyncio(loop_scope="session")

OUTSIDER = ("user_ck_outsider", "org_ck_outsider")


def events_of(body: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in body.splitlines()
        if line.startswith("data: ")
    ]


async def stream(
    http: httpx.AsyncClient,
    service: Service,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    response = await http.post(
        f"{service.base_url}/copilotkit{path}", json=body, headers=headers or service.headers()
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return events_of(response.text)


async def test_info_names_the_agents_the_organization_may_use(
    http: httpx.AsyncClient, service: Service
) -> None:
    mine = await new_agent(http, service, description="Answers questions.")
    theirs = await http.post(
        f"{service.base_url}/agents",
        json={"slug": f"t-{uuid.uuid4().hex[:8]}", "name": "Theirs"},
        headers=service.clerk.headers(*OUTSIDER, "admin"),
    )
    assert theirs.status_code == 201

    response = await http.get(f"{service.base_url}/copilotkit/info", headers=service.headers())

    assert response.status_code == 200
    info = response.json()
    assert info["mode"] == "sse"
    assert info["agents"][mine] == {
        "name": "Runner",
        "className": "HttpAgent",
        "description": "Answers questions.",
    }
    assert theirs.json()["id"] not in info["agents"]
    assert info["threadEndpoints"] == {
        "list": True,
        "inspect": True,
        "mutations": False,
        "realtimeMetadata": False,
    }
    assert info["suggestions"] is False and info["audioFileTranscriptionEnabled"] is False


async def test_run_streams_and_connect_replays_the_stored_thread_in_order(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    assert await stream(http, service, f"/agent/{agent_id}/connect", run_input(thread)) == []

    first = await stream(http, service, f"/agent/{agent_id}/run", run_input(thread, ("u1", "Hi")))
    assert types(first)[0] == "RUN_STARTED" and types(first)[-1] == "RUN_FINISHED"
    answer = next(e["messageId"] for e in first if e["type"] == "TEXT_MESSAGE_START")
    await wait_for_status(service, answer, "complete")

    replay_input = run_input(thread, run_id="connect-1")
    replay = await stream(http, service, f"/agent/{agent_id}/connect", replay_input)

    assert types(replay) == ["RUN_STARTED", "MESSAGES_SNAPSHOT", "STATE_SNAPSHOT", "RUN_FINISHED"]
    assert replay[0]["threadId"] == thread and replay[0]["runId"] == "connect-1"
    messages = replay[1]["messages"]
    assert [(m["id"], m["role"]) for m in messages] == [("u1", "user"), (answer, "assistant")]
    assert messages[1]["content"] == "Hello from the fake model."


async def test_connect_shows_another_organizations_thread_id_as_unused_and_refuses_another_agents(
    http: httpx.AsyncClient, service: Service
) -> None:
    """Thread ids are unique per organization (migration f4fa07f03acc): to an outsider, my
    thread's id is one nobody has used, answered exactly like a fresh one."""
    agent_id = await new_agent(http, service)
    other_agent = await new_agent(http, service)
    thread = fake_openai.new_id()
    await stream(http, service, f"/agent/{agent_id}/run", run_input(thread, ("u1", "Hi")))
    outsider = service.clerk.headers(*OUTSIDER, "admin")
    their_agent = (
        await http.post(
            f"{service.base_url}/agents",
            json={"slug": f"t-{uuid.uuid4().hex[:8]}", "name": "Theirs"},
            headers=outsider,
        )
    ).json()["id"]

    async def connect(agent: str, headers: dict[str, str], thread_id: str) -> httpx.Response:
        return await http.post(
            f"{service.base_url}/copilotkit/agent/{agent}/connect",
            json=run_input(thread_id),
            headers=headers,
        )

    mine = await connect(their_agent, outsider, thread)
    unused = await connect(their_agent, outsider, fake_openai.new_id())
    assert (mine.status_code, mine.text) == (unused.status_code, unused.text) == (200, "")
    assert (await connect(other_agent, service.headers(), thread)).status_code == 409
    assert (await connect(agent_id, service.headers(), "not-a-uuid")).status_code == 422
    # Connecting creates nothing: mine is still the only conversation with the id.
    fresh = fake_openai.new_id()
    assert (await connect(agent_id, service.headers(), fresh)).status_code == 200
    assert service.rows("SELECT count(*) FROM conversations WHERE id = %s", fresh) == [(0,)]
    assert service.rows("SELECT count(*) FROM conversations WHERE id = %s", thread) == [(1,)]


async def test_stop_cancels_the_streaming_run_and_keeps_its_partial_answer(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    stop_url = f"{service.base_url}/copilotkit/agent/{agent_id}/stop/{thread}"
    events: list[dict[str, Any]] = []
    body = run_input(thread, ("u1", "go slowly"), run_id="run-to-stop")
    async with http.stream(
        "POST",
        f"{service.base_url}/copilotkit/agent/{agent_id}/run",
        json=body,
        headers=service.headers(),
    ) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            events.append(json.loads(line.removeprefix("data: ")))
            if types(events).count("TEXT_MESSAGE_CONTENT") == 3:
                outsider = service.clerk.headers(*OUTSIDER, "admin")
                assert (await http.post(stop_url, headers=outsider)).status_code == 404
                other_run = await http.post(
                    stop_url, json={"runId": "another-run"}, headers=service.headers()
                )
                assert other_run.json()["stopped"] is False
                stopped = await http.post(
                    stop_url, json={"runId": "run-to-stop"}, headers=service.headers()
                )
                assert stopped.status_code == 200
                assert stopped.json()["stopped"] is True

    assert events[-1]["type"] == "RUN_ERROR" and events[-1]["code"] == "cancelled"
    streamed = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    answer = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    _, content, *_ = await wait_for_status(service, answer, "cancelled")
    assert content == streamed and 3 <= content.count("t") < 200
    # Nothing streams on the thread any more.
    again = await http.post(stop_url, headers=service.headers())
    assert again.status_code == 200 and again.json()["stopped"] is False


async def test_threads_are_the_callers_and_those_shared_with_the_organization(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    colleague = service.clerk.headers("user_ck_colleague", "org_runs", "member")
    mine, shared, private = (fake_openai.new_id() for _ in range(3))
    await stream(http, service, f"/agent/{agent_id}/run", run_input(mine, ("a", "Mine")))
    for thread, text in ((shared, "Shared"), (private, "Private")):
        body = run_input(thread, (f"{text}-1", text))
        await stream(http, service, f"/agent/{agent_id}/run", body, headers=colleague)
    shared_response = await http.patch(
        f"{service.base_url}/conversations/{shared}",
        json={"visibility": "organization"},
        headers=colleague,
    )
    assert shared_response.status_code == 200

    listed = await http.get(
        f"{service.base_url}/copilotkit/threads",
        params={"agentId": agent_id, "limit": 1},
        headers=service.headers(),
    )
    assert listed.status_code == 200
    first_page = listed.json()
    rest = await http.get(
        f"{service.base_url}/copilotkit/threads",
        params={"agentId": agent_id, "cursor": first_page["nextCursor"]},
        headers=service.headers(),
    )
    threads = first_page["threads"] + rest.json()["threads"]
    assert rest.json()["nextCursor"] is None
    assert {thread["id"] for thread in threads} == {mine, shared}
    assert {thread["name"] for thread in threads} == {"Mine", "Shared"}
    assert all(thread["agentId"] == agent_id and not thread["archived"] for thread in threads)

    messages = await http.get(
        f"{service.base_url}/copilotkit/threads/{shared}/messages", headers=service.headers()
    )
    assert [m["role"] for m in messages.json()["messages"]] == ["user", "assistant"]
    assert messages.json()["messages"][0] == {"id": "Shared-1", "role": "user", "content": "Shared"}
    for suffix in ("messages", "state", "events"):
        url = f"{service.base_url}/copilotkit/threads/{private}/{suffix}"
        assert (await http.get(url, headers=service.headers())).status_code == 404
    events = await http.get(
        f"{service.base_url}/copilotkit/threads/{mine}/events", headers=service.headers()
    )
    assert [e["type"] for e in events.json()["events"]] == [
        "RUN_STARTED",
        "MESSAGES_SNAPSHOT",
        "STATE_SNAPSHOT",
        "RUN_FINISHED",
    ]
    state = await http.get(
        f"{service.base_url}/copilotkit/threads/{mine}/state", headers=service.headers()
    )
    assert state.json() == {"state": {}}


async def test_clear_deletes_only_the_callers_own_threads(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    other_agent = await new_agent(http, service)
    colleague = service.clerk.headers("user_ck_clearer", "org_runs", "member")
    mine, mine_elsewhere, theirs = (fake_openai.new_id() for _ in range(3))
    await stream(http, service, f"/agent/{agent_id}/run", run_input(mine, ("c1", "x")))
    body = run_input(mine_elsewhere, ("c2", "x"))
    await stream(http, service, f"/agent/{other_agent}/run", body)
    await stream(http, service, f"/agent/{agent_id}/run", run_input(theirs, ("c3", "x")), colleague)
    await http.patch(
        f"{service.base_url}/conversations/{theirs}",
        json={"visibility": "organization"},
        headers=colleague,
    )

    cleared = await http.post(
        f"{service.base_url}/copilotkit/threads/clear",
        params={"agentId": agent_id},
        headers=service.headers(),
    )

    assert cleared.status_code == 204
    left = service.rows(
        "SELECT id::text FROM conversations WHERE id = ANY(%s::uuid[])",
        [mine, mine_elsewhere, theirs],
    )
    assert sorted(row[0] for row in left) == sorted([mine_elsewhere, theirs])
    assert service.rows("SELECT count(*) FROM messages WHERE external_id = 'c1'") == [(0,)]


async def test_without_a_token_every_route_is_a_401(
    http: httpx.AsyncClient, service: Service
) -> None:
    schema = (await http.get(f"{service.base_url}/openapi.json")).json()
    routes = [
        (method, path)
        for path, operations in schema["paths"].items()
        if path.startswith("/copilotkit/")
        for method in operations
    ]
    assert len(routes) == 9
    ids = {"agent_id": str(uuid.uuid4()), "thread_id": str(uuid.uuid4())}
    for method, path in routes:
        url = service.base_url + path.format(**ids)
        body = run_input(ids["thread_id"]) if method == "post" else None
        response = await http.request(method, url, json=body)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["type"].endswith("/missing-token")


async def test_a_refused_token_is_a_run_error_in_the_stream(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    an_hour_ago = int(time.time()) - 3600
    expired = service.clerk.token("user_runner", "org_runs", exp=an_hour_ago)
    no_organization = service.clerk.token("user_runner")
    cases = [
        ({"Authorization": f"Bearer {expired}"}, "unauthenticated", "Invalid session token"),
        ({"Authorization": "Bearer not-a-jwt"}, "unauthenticated", "Invalid session token"),
        (
            {"Authorization": f"Bearer {no_organization}"},
            "organization-required",
            "Organization required",
        ),
    ]
    for headers, code, title in cases:
        for route in ("run", "connect"):
            body = run_input(thread, ("r1", "Hi"))
            events = await stream(http, service, f"/agent/{agent_id}/{route}", body, headers)
            assert events == [{"type": "RUN_ERROR", "message": title, "code": code}]
        info = await http.get(f"{service.base_url}/copilotkit/info", headers=headers)
        assert info.status_code in (401, 403)
    assert service.rows("SELECT count(*) FROM conversations WHERE id = %s", thread) == [(0,)]
