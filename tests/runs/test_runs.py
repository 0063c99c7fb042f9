"""Runs end to end over real HTTP: the service on a loopback port (its own database, since a
run saves on sessions of its own), a fake OpenAI-compatible model server beside it, and
clients that read the SSE stream as CopilotKit does."""

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, new_agent, run_input, serve, start_service

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def run(
    http: httpx.AsyncClient, service: Service, agent_id: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    events = []
    async with http.stream(
        "POST", f"{service.base_url}/agents/{agent_id}/runs", json=body, headers=service.headers()
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def squeezed(names: list[str]) -> list[str]:
    """Repeats in a row once: the relay merges pieces that arrive together."""
    return [name for i, name in enumerate(names) if i == 0 or name != names[i - 1]]


async def wait_for_status(service: Service, message_id: str, status: str) -> tuple[Any, ...]:
    """Until the message has `status` (30 s at most: a slow answer takes 10 s to stream, and
    each look here blocks the loop the service shares with the test for a moment)."""
    deadline = time.monotonic() + 30
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        rows = service.rows(
            "SELECT status, content, error, input_tokens, output_tokens FROM messages "
            "WHERE external_id = %s",
            message_id,
        )
        if rows and rows[0][0] == status:
            return rows[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} never reached {status}: {rows}")


async def test_a_run_streams_ag_ui_events_and_saves_the_answer(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service, instructions="You are terse.")
    thread = fake_openai.new_id()
    events = await run(http, service, agent_id, run_input(thread, ("m1", "Hi there")))

    assert types(events)[:3] == ["RUN_STARTED", "STATE_SNAPSHOT", "TEXT_MESSAGE_START"]
    assert types(events)[-2:] == ["TEXT_MESSAGE_END", "RUN_FINISHED"]
    text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "Hello from the fake model."
    message_id = events[2]["messageId"]
    _, content, error, tokens_in, tokens_out = await wait_for_status(
        service, message_id, "complete"
    )
    assert (content, error, tokens_in, tokens_out) == (text, None, 12, 6)
    sent = fake_openai.requests_seen[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "You are terse."}
    assert sent[-1] == {"role": "user", "content": "Hi there"}

    listed = await http.get(
        f"{service.base_url}/conversations/{thread}/messages", headers=service.headers()
    )
    assert [m["role"] for m in listed.json()["items"]] == ["user", "assistant"]


async def test_a_client_with_only_the_newest_message_first_gets_the_stored_history(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    first = await run(http, service, agent_id, run_input(thread, ("m1", "First question")))
    assert "MESSAGES_SNAPSHOT" not in types(first)
    second = await run(http, service, agent_id, run_input(thread, ("m3", "Second question")))
    assert types(second)[:2] == ["RUN_STARTED", "MESSAGES_SNAPSHOT"]
    snapshot = second[1]["messages"]
    assert [(m["role"], m.get("content", "")[:6]) for m in snapshot] == [
        ("user", "First "),
        ("assistant", "Hello "),
        ("user", "Second"),
    ]
    # The model saw the whole thread, not only what the client sent.
    roles = [m["role"] for m in fake_openai.requests_seen[-1]["messages"]]
    assert roles == ["user", "assistant", "user"]


async def test_a_message_can_attach_files_of_its_conversation(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    conversation = await http.post(
        f"{service.base_url}/conversations", json={"agent_id": agent_id}, headers=service.headers()
    )
    thread = conversation.json()["id"]
    uploaded = await http.post(
        f"{service.base_url}/conversations/{thread}/files",
        files={"file": ("notes.txt", b"Holidays: 25 days.", "text/plain")},
        headers=service.headers(),
    )
    file_id = uploaded.json()["id"]
    body = run_input(thread)
    body["messages"] = [
        {
            "id": "m-attach",
            "role": "user",
            "content": [
                {"type": "text", "text": "What does it say?"},
                {"type": "document", "source": {"type": "file", "value": file_id}},
            ],
        }
    ]

    events = await run(http, service, agent_id, body)

    assert types(events)[-1] == "RUN_FINISHED"
    sent = fake_openai.requests_seen[-1]["messages"][-1]
    assert sent["role"] == "user"
    assert sent["content"] == (
        f"What does it say?\n\n[Attached file 'notes.txt' (text/plain), id {file_id}]"
    )
    assert service.rows(
        "SELECT count(*) FROM message_files mf JOIN messages m ON m.id = mf.message_id "
        "WHERE m.external_id = 'm-attach' AND mf.file_id = %s",
        file_id,
    ) == [(1,)]
    page = await http.get(
        f"{service.base_url}/conversations/{thread}/messages", headers=service.headers()
    )
    user = page.json()["items"][0]
    assert user["content"] == [
        {"type": "text", "text": "What does it say?"},
        {
            "type": "document",
            "source": {"type": "file", "value": file_id, "mimeType": "text/plain"},
            "metadata": {"name": "notes.txt"},
        },
    ]


async def test_a_message_naming_a_file_outside_its_conversation_is_422(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    elsewhere = await http.post(
        f"{service.base_url}/conversations", json={"agent_id": agent_id}, headers=service.headers()
    )
    other_file = await http.post(
        f"{service.base_url}/conversations/{elsewhere.json()['id']}/files",
        files={"file": ("a.txt", b"elsewhere", "text/plain")},
        headers=service.headers(),
    )
    thread = fake_openai.new_id()
    for value in [other_file.json()["id"], "not-a-uuid"]:
        body = run_input(thread)
        body["messages"] = [
            {
                "id": f"m-{value}",
                "role": "user",
                "content": [{"type": "image", "source": {"type": "file", "value": value}}],
            }
        ]
        response = await http.post(
            f"{service.base_url}/agents/{agent_id}/runs", json=body, headers=service.headers()
        )
        assert response.status_code == 422
        assert response.json()["type"] == "/problems/invalid-attachment"
    assert service.rows("SELECT count(*) FROM conversations WHERE id = %s", thread) == [(0,)]


async def test_resending_messages_does_not_store_them_twice(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    await run(http, service, agent_id, run_input(thread, ("m1", "Once")))
    await run(http, service, agent_id, run_input(thread, ("m1", "Once"), ("m2", "Twice")))
    rows = service.rows(
        "SELECT external_id FROM messages WHERE conversation_id = %s AND role = 'user' "
        "ORDER BY created_at",
        uuid.UUID(thread),
    )
    assert [row[0] for row in rows] == ["m1", "m2"]


async def test_two_messages_with_one_id_are_a_422_and_nothing_is_stored(
    http: httpx.AsyncClient, service: Service
) -> None:
    """Found by fuzzing: the second insert broke the unique key, a 500."""
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    response = await http.post(
        f"{service.base_url}/agents/{agent_id}/runs",
        json=run_input(thread, ("m1", "Once"), ("m1", "Again")),
        headers=service.headers(),
    )
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/duplicate-message-ids"
    assert service.rows("SELECT id FROM conversations WHERE id = %s", uuid.UUID(thread)) == []


async def test_an_upstream_error_ends_with_run_error_and_keeps_the_message(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    run_id = fake_openai.new_id()
    events = await run(
        http,
        service,
        agent_id,
        run_input(fake_openai.new_id(), ("m1", "please fail"), run_id=run_id),
    )
    assert types(events) == ["RUN_STARTED", "STATE_SNAPSHOT", "RUN_ERROR"]
    assert "500" in events[-1]["message"]
    (message_id,) = service.rows(
        "SELECT external_id FROM messages WHERE run_id = %s AND role = 'assistant'", run_id
    )[0]
    _, content, error, *_ = await wait_for_status(service, message_id, "error")
    assert content == "" and "500" in error


async def test_an_upstream_failure_mid_stream_keeps_the_partial_answer(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    events = await run(
        http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "break midway"))
    )
    assert types(events)[-1] == "RUN_ERROR"
    message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    _, content, *_ = await wait_for_status(service, message_id, "error")
    assert content == "Hello from the"


async def test_a_client_that_disconnects_loses_nothing(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    body = run_input(fake_openai.new_id(), ("m1", "go slowly"))
    message_id = None
    async with http.stream(
        "POST", f"{service.base_url}/agents/{agent_id}/runs", json=body, headers=service.headers()
    ) as response:
        async for line in response.aiter_lines():
            if '"TEXT_MESSAGE_CONTENT"' in line:
                message_id = json.loads(line.removeprefix("data: "))["messageId"]
                break  # the client goes away after the first token
    assert message_id is not None
    _, content, *_ = await wait_for_status(service, message_id, "complete")
    assert content.count("t") == 200


async def test_cancel_stops_the_run_and_keeps_the_partial_answer(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    run_id = fake_openai.new_id()
    body = run_input(fake_openai.new_id(), ("m1", "go slowly"), run_id=run_id)
    events: list[dict[str, Any]] = []
    async with http.stream(
        "POST", f"{service.base_url}/agents/{agent_id}/runs", json=body, headers=service.headers()
    ) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            events.append(json.loads(line.removeprefix("data: ")))
            if types(events).count("TEXT_MESSAGE_CONTENT") == 3:
                outsider = service.clerk.headers("user_other", "org_other", "admin")
                refused = await http.post(
                    f"{service.base_url}/runs/{run_id}/cancel", headers=outsider
                )
                assert refused.status_code == 404
                cancelled = await http.post(
                    f"{service.base_url}/runs/{run_id}/cancel", headers=service.headers()
                )
                assert cancelled.status_code == 202
    assert types(events)[-1] == "RUN_ERROR"
    assert events[-1]["code"] == "cancelled"
    message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    _, content, *_ = await wait_for_status(service, message_id, "cancelled")
    assert 3 <= content.count("t") < 200


async def test_a_run_is_cancelled_from_another_process_of_the_service(
    http: httpx.AsyncClient, service: Service
) -> None:
    """`ajc serve --workers N`: the cancel lands on a process that does not stream the run."""
    agent_id = await new_agent(http, service)
    run_id = fake_openai.new_id()
    body = run_input(fake_openai.new_id(), ("m1", "go slowly"), run_id=run_id)
    events: list[dict[str, Any]] = []
    async for other in serve(service.settings, service.owner_url, service.clerk):
        async with http.stream(
            "POST",
            f"{service.base_url}/agents/{agent_id}/runs",
            json=body,
            headers=service.headers(),
        ) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(json.loads(line.removeprefix("data: ")))
                if types(events).count("TEXT_MESSAGE_CONTENT") != 3:
                    continue
                for outsider in [
                    service.clerk.headers("user_other", "org_runs", "admin"),
                    service.clerk.headers("user_runner", "org_other", "admin"),
                ]:
                    refused = await http.post(
                        f"{other.base_url}/runs/{run_id}/cancel", headers=outsider
                    )
                    assert refused.status_code == 404
                cancelled = await http.post(
                    f"{other.base_url}/runs/{run_id}/cancel", headers=service.headers()
                )
                assert cancelled.status_code == 202
        finished = await http.post(
            f"{other.base_url}/runs/{run_id}/cancel", headers=service.headers()
        )
        assert finished.status_code == 404
    assert events[-1]["type"] == "RUN_ERROR"
    assert events[-1]["code"] == "cancelled"
    message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    _, content, *_ = await wait_for_status(service, message_id, "cancelled")
    assert content.count("t") < 200


async def test_a_cancel_stops_only_the_callers_run_of_that_id(
    http: httpx.AsyncClient, service: Service
) -> None:
    """Clients choose run ids: two organizations stream runs of the same id at once, in two
    processes; one cancels its own through a third. Only its own stops."""
    a, b = service.headers(), service.clerk.headers("user_same_id", "org_same_id", "admin")
    agents = {}
    for name, headers in (("a", a), ("b", b)):
        created = await http.post(
            f"{service.base_url}/agents",
            json={"slug": f"{name}-{fake_openai.new_id()[:8]}", "name": "Same id"},
            headers=headers,
        )
        agents[name] = created.json()["id"]
    run_id = "run-1"
    finished: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}

    async def stream(
        name: str, base_url: str, headers: dict[str, str], started: asyncio.Event
    ) -> None:
        body = run_input(fake_openai.new_id(), ("m1", "go slowly 60"), run_id=run_id)
        async with http.stream(
            "POST", f"{base_url}/agents/{agents[name]}/runs", json=body, headers=headers
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    finished[name].append(json.loads(line.removeprefix("data: ")))
                    if finished[name][-1]["type"] == "TEXT_MESSAGE_CONTENT":
                        started.set()

    async for second in serve(service.settings, service.owner_url, service.clerk):
        async for third in serve(service.settings, service.owner_url, service.clerk):
            a_started, b_started = asyncio.Event(), asyncio.Event()
            streams = [
                asyncio.create_task(stream("a", service.base_url, a, a_started)),
                asyncio.create_task(stream("b", second.base_url, b, b_started)),
            ]
            await asyncio.wait_for(asyncio.gather(a_started.wait(), b_started.wait()), 30)
            cancelled = await http.post(f"{third.base_url}/runs/{run_id}/cancel", headers=b)
            assert cancelled.status_code == 202
            await asyncio.wait_for(asyncio.gather(*streams), 60)

    assert finished["b"][-1]["type"] == "RUN_ERROR" and finished["b"][-1]["code"] == "cancelled"
    assert finished["a"][-1]["type"] == "RUN_FINISHED"
    answer = next(e["messageId"] for e in finished["a"] if e["type"] == "TEXT_MESSAGE_START")
    _, content, *_ = await wait_for_status(service, answer, "complete")
    assert content.count("t") == 60


async def test_a_thread_id_must_be_a_uuid(http: httpx.AsyncClient, service: Service) -> None:
    agent_id = await new_agent(http, service)
    response = await http.post(
        f"{service.base_url}/agents/{agent_id}/runs",
        json=run_input("not-a-uuid", ("m1", "hi")),
        headers=service.headers(),
    )
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/invalid-thread-id"


OUTSIDER = ("user_outsider", "org_outsider", "admin")


async def outsiders_agent(http: httpx.AsyncClient, service: Service) -> str:
    theirs = await http.post(
        f"{service.base_url}/agents",
        json={"slug": f"outsider-{uuid.uuid4().hex[:8]}", "name": "Outsider"},
        headers=service.clerk.headers(*OUTSIDER),
    )
    return str(theirs.json()["id"])


async def test_another_organizations_agent_is_404(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    on_my_agent = await http.post(
        f"{service.base_url}/agents/{agent_id}/runs",
        json=run_input(fake_openai.new_id(), ("x2", "let me in")),
        headers=service.clerk.headers(*OUTSIDER),
    )
    assert on_my_agent.status_code == 404


async def test_another_organizations_thread_id_starts_a_thread_of_the_callers_own(
    http: httpx.AsyncClient, service: Service
) -> None:
    """Thread ids are unique per organization (migration f4fa07f03acc): the outsider's run
    on my threadId is their own new conversation, which shows nothing of mine, and mine is
    untouched."""
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    secret = f"my secret {uuid.uuid4().hex[:8]}"
    await run(http, service, agent_id, run_input(thread, ("m1", secret)))
    outsider = service.clerk.headers(*OUTSIDER)

    on_my_thread = await http.post(
        f"{service.base_url}/agents/{await outsiders_agent(http, service)}/runs",
        json=run_input(thread, ("x1", "let me in")),
        headers=outsider,
    )

    assert on_my_thread.status_code == 200
    assert secret not in on_my_thread.text
    sent = fake_openai.requests_seen[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["let me in"]
    for headers, said in ((service.headers(), secret), (outsider, "let me in")):
        listed = await http.get(
            f"{service.base_url}/conversations/{thread}/messages", headers=headers
        )
        contents = [(m["role"], m["content"]) for m in listed.json()["items"]]
        assert contents == [("user", said), ("assistant", "Hello from the fake model.")]
    rows = service.rows(
        "SELECT o.clerk_id, count(*) FROM messages m JOIN organizations o "
        "ON o.id = m.organization_id WHERE m.conversation_id = %s GROUP BY o.clerk_id "
        "ORDER BY o.clerk_id",
        uuid.UUID(thread),
    )
    assert rows == [("org_outsider", 2), ("org_runs", 2)]


async def test_without_a_model_the_no_llm_mode_answers_labelled(
    http: httpx.AsyncClient, test_database: DatabaseUnderTest
) -> None:
    async for service in start_service(test_database, "nollm"):
        agent_id = await new_agent(http, service)
        events = await run(http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "hi")))
        assert types(events)[-1] == "RUN_FINISHED"
        text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
        assert text.startswith("[no-LLM mode")


async def test_long_threads_are_trimmed_to_the_agents_context_window(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(
        http,
        service,
        instructions="Keep me.",
        model_settings={"context_window": 1_000, "max_tokens": 200},
    )
    thread = fake_openai.new_id()
    for turn in range(6):
        await run(
            http, service, agent_id, run_input(thread, (f"m{turn}", f"turn {turn} " + "w" * 1_200))
        )
    sent = fake_openai.requests_seen[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Keep me."}
    assert sent[-1]["content"].startswith("turn 5")
    assert not any(m["content"].startswith("turn 0") for m in sent)


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city, looked up by the browser.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


async def test_front_end_tools_are_streamed_as_tool_calls_and_their_results_continue_the_run(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    first = run_input(thread, ("m1", "Weather? call the tool"))
    first["tools"] = [WEATHER_TOOL]
    events = await run(http, service, agent_id, first)

    # The arguments come in two pieces, one event each or merged if they arrive together.
    assert squeezed(types(events)) == [
        "RUN_STARTED",
        "STATE_SNAPSHOT",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "RUN_FINISHED",
    ]
    start = events[2]
    assert (start["toolCallId"], start["toolCallName"]) == ("call_fe1", "get_weather")
    assistant_id = start["parentMessageId"]
    arguments = "".join(e["delta"] for e in events if e["type"] == "TOOL_CALL_ARGS")
    assert json.loads(arguments) == {"city": "Oslo"}
    assert fake_openai.requests_seen[-1]["tools"][0]["function"]["name"] == "get_weather"

    # The browser ran the tool; the next run carries its result.
    second = {
        **run_input(thread, run_id=fake_openai.new_id()),
        "tools": [WEATHER_TOOL],
        "messages": [
            {"id": "m1", "role": "user", "content": "Weather? call the tool"},
            {
                "id": assistant_id,
                "role": "assistant",
                "toolCalls": [
                    {
                        "id": "call_fe1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"id": "t1", "role": "tool", "toolCallId": "call_fe1", "content": "3 degrees"},
        ],
    }
    events = await run(http, service, agent_id, second)
    text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "The tool said: 3 degrees"
    sent = fake_openai.requests_seen[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == "call_fe1"
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_fe1", "content": "3 degrees"}

    thread_view = await http.get(
        f"{service.base_url}/conversations/{thread}/messages", headers=service.headers()
    )
    roles = [(m["role"], "toolCalls" in m) for m in thread_view.json()["items"]]
    assert roles == [("user", False), ("assistant", True), ("tool", False), ("assistant", False)]


async def test_the_update_state_tool_saves_the_state_and_streams_a_state_delta(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service, capabilities=["update_state"])
    thread = fake_openai.new_id()
    events = await run(http, service, agent_id, run_input(thread, ("m1", "remember milk")))

    assert types(events) == [
        "RUN_STARTED",
        "STATE_SNAPSHOT",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "STATE_DELTA",
        "TOOL_CALL_RESULT",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    delta = next(e for e in events if e["type"] == "STATE_DELTA")["delta"]
    assert delta == [{"op": "add", "path": "/items", "value": ["milk"]}]
    answer = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert answer.startswith("The tool said: ")
    # The second model call saw the call and its result.
    sent = fake_openai.requests_seen[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "update_state"
    assert sent[-1]["role"] == "tool"

    state = await http.get(f"{service.base_url}/agents/{agent_id}/state", headers=service.headers())
    assert state.json() == {"state": {"items": ["milk"]}, "version": 1}
    thread_view = await http.get(
        f"{service.base_url}/conversations/{thread}/messages", headers=service.headers()
    )
    roles = [(m["role"], "toolCalls" in m) for m in thread_view.json()["items"]]
    assert roles == [("user", False), ("assistant", True), ("tool", False), ("assistant", False)]


async def test_tools_the_agent_may_not_use_are_not_offered(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)  # no capabilities
    events = await run(
        http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "remember milk"))
    )
    assert "TOOL_CALL_START" not in types(events)
    assert "tools" not in fake_openai.requests_seen[-1]
    state = await http.get(f"{service.base_url}/agents/{agent_id}/state", headers=service.headers())
    assert state.json()["version"] == 0


async def test_running_a_quick_task_sends_its_filled_in_prompt(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    task = await http.post(
        f"{service.base_url}/agents/{agent_id}/quick-tasks",
        json={
            "name": "Backlog",
            "prompt": "Summarise the {team} backlog.",
            "parameters": {"type": "object", "required": ["team"]},
        },
        headers=service.headers(),
    )
    path = f"/agents/{agent_id}/quick-tasks/{task.json()['id']}/runs"
    missing = await http.post(
        f"{service.base_url}{path}", json={"parameters": {}}, headers=service.headers()
    )
    assert missing.status_code == 422
    assert missing.json()["type"] == "/problems/missing-quick-task-parameters"

    thread = fake_openai.new_id()
    events = []
    async with http.stream(
        "POST",
        f"{service.base_url}{path}",
        json={"threadId": thread, "parameters": {"team": "core"}},
        headers=service.headers(),
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    assert types(events)[-1] == "RUN_FINISHED"
    assert fake_openai.requests_seen[-1]["messages"][-1] == {
        "role": "user",
        "content": "Summarise the core backlog.",
    }
    outsider = service.clerk.headers("user_qt", "org_qt", "admin")
    refused = await http.post(
        f"{service.base_url}{path}", json={"parameters": {"team": "x"}}, headers=outsider
    )
    assert refused.status_code == 404
