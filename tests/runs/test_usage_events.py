"""Every model call of a run is one usage event, saved with the answer it made: the
provider's tokens (cached ones apart) or the estimate marked as such, the run's who and
where, and the cost at the environment model's price."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, new_agent, run_input, start_service
from tests.runs.test_runs import run

pytestmark = pytest.mark.asyncio(loop_scope="session")

EVENT_COLUMNS = (
    "request_id, purpose, model_id, model_name, input_tokens, cached_input_tokens, "
    "output_tokens, tokens_estimated, cost_micro_usd, user_id, agent_id, conversation_id, run_id"
)


@pytest.fixture(scope="module")
async def service(test_database: DatabaseUnderTest, model_url: str) -> AsyncIterator[Service]:
    """The environment's model priced by LLM_PRICES: USD 1 per million input tokens (0.5
    cached), 2 per million output."""
    async for running in start_service(
        test_database,
        "usage_events",
        openai_base_url=model_url,
        openai_api_key="test-key",
        llm_model="fake-model",
        llm_max_retries=0,
        llm_prices={"fake-model": {"input": 1.0, "cached_input": 0.5, "output": 2.0}},
    ):
        yield running


def events_of_run(service: Service, run_id: str) -> list[dict[str, Any]]:
    rows = service.rows(
        f"SELECT {EVENT_COLUMNS} FROM usage_events WHERE run_id = %s ORDER BY occurred_at",
        run_id,
    )
    names = [name.strip() for name in EVENT_COLUMNS.split(",")]
    return [dict(zip(names, row, strict=True)) for row in rows]


def answer_ids(service: Service, run_id: str) -> list[str]:
    rows = service.rows(
        "SELECT id FROM messages WHERE run_id = %s AND role = 'assistant' ORDER BY created_at",
        run_id,
    )
    return [f"chat:{row[0]}" for row in rows]


async def test_a_run_records_its_model_call_with_the_providers_tokens_and_cost(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    thread, run_id = fake_openai.new_id(), fake_openai.new_id()
    events = await run(http, service, agent_id, run_input(thread, ("m1", "Hi"), run_id=run_id))
    assert events[-1]["type"] == "RUN_FINISHED"

    [event] = events_of_run(service, run_id)
    [(environment_model,)] = service.rows("SELECT id FROM models WHERE from_environment")
    [(user_id,)] = service.rows("SELECT user_id FROM conversations WHERE id = %s", thread)
    assert event["request_id"] == answer_ids(service, run_id)[0]
    assert (event["purpose"], event["model_id"], event["model_name"]) == (
        "chat",
        environment_model,
        "fake-model",
    )
    # The fake provider counts 12 prompt tokens and one per streamed piece (six).
    assert (event["input_tokens"], event["cached_input_tokens"], event["output_tokens"]) == (
        12,
        0,
        6,
    )
    assert event["tokens_estimated"] is False
    assert event["cost_micro_usd"] == 12 * 1 + 6 * 2  # micro-USD: USD per million x tokens
    assert (str(event["agent_id"]), str(event["conversation_id"])) == (agent_id, thread)
    assert event["user_id"] == user_id

    usage = await http.get(
        f"{service.base_url}/usage", params={"group_by": "agent"}, headers=service.headers()
    )
    mine = [row for row in usage.json()["rows"] if row["agent_id"] == agent_id]
    assert [(row["calls"], row["cost_micro_usd"]) for row in mine] == [(1, 24)]


async def test_cached_prompt_tokens_are_charged_at_their_own_price(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    run_id = fake_openai.new_id()
    body = run_input(fake_openai.new_id(), ("m1", "answer from the cache"), run_id=run_id)
    await run(http, service, agent_id, body)
    [event] = events_of_run(service, run_id)
    assert (event["input_tokens"], event["cached_input_tokens"]) == (12, 8)
    # 4 fresh at 1, 8 cached at 0.5, 6 output at 2 (micro-USD per token).
    assert event["cost_micro_usd"] == 4 + 4 + 12


async def test_each_round_of_a_tool_using_run_is_an_event_estimated_without_a_count(
    http: httpx.AsyncClient, service: Service
) -> None:
    """The fake provider sends no usage with a tool call nor with the answer that follows
    it: both rounds are this service's estimate, and marked so."""
    agent_id = await new_agent(http, service, capabilities=["update_state"])
    run_id = fake_openai.new_id()
    body = run_input(fake_openai.new_id(), ("m1", "remember milk"), run_id=run_id)
    events = await run(http, service, agent_id, body)
    assert events[-1]["type"] == "RUN_FINISHED"

    recorded = events_of_run(service, run_id)
    assert [event["request_id"] for event in recorded] == answer_ids(service, run_id)
    assert len(recorded) == 2
    assert all(event["tokens_estimated"] for event in recorded)
    assert all(event["input_tokens"] > 0 and event["output_tokens"] > 0 for event in recorded)
    # The second round sent the first's call and the tool's result as well.
    assert recorded[1]["input_tokens"] > recorded[0]["input_tokens"]
    assert all(event["cost_micro_usd"] is not None for event in recorded)


async def test_a_call_the_provider_refused_is_not_an_event_and_a_broken_one_is(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    refused_run = fake_openai.new_id()
    body = run_input(fake_openai.new_id(), ("m1", "please fail"), run_id=refused_run)
    assert (await run(http, service, agent_id, body))[-1]["type"] == "RUN_ERROR"
    assert events_of_run(service, refused_run) == []

    broken_run = fake_openai.new_id()
    body = run_input(fake_openai.new_id(), ("m1", "break midway"), run_id=broken_run)
    assert (await run(http, service, agent_id, body))[-1]["type"] == "RUN_ERROR"
    [event] = events_of_run(service, broken_run)
    # Three pieces arrived ("Hello from the": 14 characters, four tokens by the estimate).
    assert (event["tokens_estimated"], event["output_tokens"]) == (True, 4)
