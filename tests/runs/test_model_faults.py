"""What a run does when the model endpoint misbehaves mid-answer: garbage on the stream, a reset
connection, a rate limit, a stream that goes silent. Each ends the run with RUN_ERROR and the
partial answer kept (status `error`), or, for a rate limit before the first token, is retried;
and the service goes on serving the next run."""

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, new_agent, run_input, start_service
from tests.runs.test_runs import run, types, wait_for_status

pytestmark = pytest.mark.asyncio(loop_scope="session")

TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="module")
async def retrying_service(
    test_database: DatabaseUnderTest, model_url: str
) -> AsyncIterator[Service]:
    """Retries on, and a short timeout between chunks, as a deployment would set them."""
    async for running in start_service(
        test_database,
        "faults",
        openai_base_url=model_url,
        openai_api_key="test-key",
        llm_model="fake-model",
        llm_max_retries=2,
        llm_timeout_seconds=TIMEOUT_SECONDS,
    ):
        yield running


async def assert_ends_in_error_keeping(
    http: httpx.AsyncClient, service: Service, prompt: str, partial: str
) -> str:
    """Run `prompt`; the run ends with RUN_ERROR, its answer saved as `partial` with status
    `error`. Returns the error the client was told."""
    agent_id = await new_agent(http, service)
    events = await run(http, service, agent_id, run_input(fake_openai.new_id(), ("m1", prompt)))

    assert types(events)[-1] == "RUN_ERROR"
    assert events[-1]["code"] == "error"
    message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    streamed = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert streamed == partial
    _, content, error, *_ = await wait_for_status(service, message_id, "error")
    assert content == partial
    assert error == events[-1]["message"]
    return str(error)


async def assert_still_serving(http: httpx.AsyncClient, service: Service) -> None:
    agent_id = await new_agent(http, service)
    events = await run(http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "Hi")))
    assert types(events)[-1] == "RUN_FINISHED"
    text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "Hello from the fake model."


async def test_garbage_mid_stream_ends_the_run_in_error_with_the_partial_answer(
    http: httpx.AsyncClient, service: Service
) -> None:
    error = await assert_ends_in_error_keeping(http, service, "send garbage", "Hello from the")
    assert "malformed" in error
    await assert_still_serving(http, service)


async def test_a_connection_reset_mid_stream_ends_the_run_in_error_with_the_partial_answer(
    http: httpx.AsyncClient, service: Service
) -> None:
    error = await assert_ends_in_error_keeping(http, service, "reset midway", "Hello from the")
    assert "connection" in error.lower()
    await assert_still_serving(http, service)


async def test_a_rate_limit_before_the_first_token_is_retried_after_its_retry_after(
    http: httpx.AsyncClient, retrying_service: Service
) -> None:
    agent_id = await new_agent(http, retrying_service)
    prompt = f"rate limit once {fake_openai.new_id()}"
    started = time.monotonic()
    events = await run(
        http, retrying_service, agent_id, run_input(fake_openai.new_id(), ("m1", prompt))
    )

    assert types(events)[-1] == "RUN_FINISHED"
    assert time.monotonic() - started >= fake_openai.RETRY_AFTER_SECONDS
    text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "Hello from the fake model."
    message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    _, content, error, *_ = await wait_for_status(retrying_service, message_id, "complete")
    assert (content, error) == (text, None)
    # (Other tests of the session send runs with no message at all: `messages` may be empty.)
    asked = [
        r
        for r in fake_openai.requests_seen
        if r["messages"][-1:] and r["messages"][-1]["content"] == prompt
    ]
    assert len(asked) == 2


async def test_a_stream_that_goes_silent_times_out_with_the_partial_answer(
    http: httpx.AsyncClient, retrying_service: Service
) -> None:
    started = time.monotonic()
    error = await assert_ends_in_error_keeping(
        http, retrying_service, "stall midway", "Hello from the"
    )
    assert "in time" in error
    # The timeout between chunks, not the fake's silence or RUN_MAX_SECONDS, ended it; and
    # it was not retried (the answer had begun).
    assert time.monotonic() - started < fake_openai.STALL_SECONDS / 3
    await assert_still_serving(http, retrying_service)


async def test_a_nul_character_from_the_model_is_dropped_and_the_answer_saved(
    http: httpx.AsyncClient, service: Service
) -> None:
    """PostgreSQL stores no NUL: one in the model's answer must not fail the run's save."""
    agent_id = await new_agent(http, service)
    events = await run(http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "say nul")))
    assert types(events)[-1] == "RUN_FINISHED", events[-1]
    streamed = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert streamed == "Hello world"
    message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    _, content, *_ = await wait_for_status(service, message_id, "complete")
    assert content == "Hello world"
