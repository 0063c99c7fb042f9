"""A run's answer is saved as it streams (every process's answers together, once a second:
app/runs/saving.py) and at its end, and the service's own load never fails a run: a save
that finds no pooled connection is tried again, the run goes on, its answer is whole."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, new_agent, run_input, start_service
from tests.runs.test_runs import types, wait_for_status

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def tight_pool(test_database: DatabaseUnderTest, model_url: str) -> AsyncIterator[Service]:
    """One pooled connection, and a fifth of a second to wait for it."""
    async for running in start_service(
        test_database,
        "tight-pool",
        openai_base_url=model_url,
        openai_api_key="test-key",
        llm_model="fake-model",
        llm_max_retries=0,
        database_pool_size=1,
        database_max_overflow=0,
        database_pool_timeout_seconds=0.2,
    ):
        yield running


async def hold_the_pool(app: FastAPI, seconds: float) -> None:
    """The one connection of each pool: the sessions' (requests) and the driver's (a run's
    saves, `Database.transaction`)."""
    async with app.state.engine.connect() as connection, app.state.database.acquire():
        await connection.execute(text("SELECT 1"))
        await asyncio.sleep(seconds)


async def stream_run(
    http: httpx.AsyncClient, service: Service, body: dict[str, Any], on_first_token: Any
) -> list[dict[str, Any]]:
    agent_id = await new_agent(http, service)
    events: list[dict[str, Any]] = []
    async with http.stream(
        "POST", f"{service.base_url}/agents/{agent_id}/runs", json=body, headers=service.headers()
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if types(events).count("TEXT_MESSAGE_CONTENT") == 1:
                    on_first_token(events)
    return events


async def test_the_answer_is_saved_while_it_streams(
    http: httpx.AsyncClient, tight_pool: Service
) -> None:
    service = tight_pool
    seen: list[tuple[Any, ...]] = []

    async def watch(message_id: str) -> None:
        for _ in range(60):
            await asyncio.sleep(0.1)
            rows = service.rows(
                "SELECT status, content FROM messages WHERE external_id = %s", message_id
            )
            if rows and rows[0][0] == "streaming" and rows[0][1]:
                seen.append(rows[0])
                return

    watching: list[asyncio.Task[None]] = []

    def start_watching(events: list[dict[str, Any]]) -> None:
        message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
        watching.append(asyncio.create_task(watch(message_id)))

    body = run_input(fake_openai.new_id(), ("m1", "go slowly 50"))
    events = await stream_run(http, service, body, start_watching)
    await watching[0]

    assert types(events)[-1] == "RUN_FINISHED"
    status, partial = seen[0]
    assert status == "streaming" and 0 < partial.count("t") < 50


async def test_a_run_whose_saves_find_no_connection_still_ends_whole(
    http: httpx.AsyncClient, tight_pool: Service
) -> None:
    """From the first token until after the model's last one, the test holds the one pooled
    connection: every periodic save and the run's last save time out waiting for it."""
    service = tight_pool
    assert service.app is not None
    holding: list[asyncio.Task[None]] = []

    def hold(_: list[dict[str, Any]]) -> None:
        holding.append(asyncio.create_task(hold_the_pool(service.app, 2.5)))  # type: ignore[arg-type]

    body = run_input(fake_openai.new_id(), ("m1", "go slowly 30"))  # 1.5 s of tokens
    events = await stream_run(http, service, body, hold)
    await holding[0]

    assert types(events)[-1] == "RUN_FINISHED", events[-1]
    message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    _, content, error, _, output_tokens = await wait_for_status(service, message_id, "complete")
    assert content == "".join(f"t{i} " for i in range(30))
    assert error is None and output_tokens == 30


async def test_a_run_that_finds_no_connection_to_start_is_told_to_retry(
    http: httpx.AsyncClient, tight_pool: Service
) -> None:
    service = tight_pool
    assert service.app is not None
    agent_id = await new_agent(http, service)
    thread = fake_openai.new_id()
    holding = asyncio.create_task(hold_the_pool(service.app, 1.0))
    await asyncio.sleep(0.1)

    refused = await http.post(
        f"{service.base_url}/agents/{agent_id}/runs",
        json=run_input(thread, ("m1", "hi")),
        headers=service.headers(),
    )
    await holding

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"] == "/problems/database-busy"
    assert service.rows("SELECT count(*) FROM conversations WHERE id = %s", thread) == [(0,)]
