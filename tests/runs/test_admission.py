"""Admission control: a process streams at most RUN_MAX_CONCURRENT runs; the next is refused
at once (503, problem+json, Retry-After) with nothing written, and a place comes back when a
run ends or a request fails before its run starts."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, new_agent, run_input, start_service

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def one_run_service(
    test_database: DatabaseUnderTest, model_url: str
) -> AsyncIterator[Service]:
    async for running in start_service(
        test_database,
        "admission",
        openai_base_url=model_url,
        openai_api_key="test-key",
        llm_model="fake-model",
        llm_max_retries=0,
        run_max_concurrent=1,
    ):
        yield running


async def post_run(
    http: httpx.AsyncClient, service: Service, agent_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await http.post(
        f"{service.base_url}/agents/{agent_id}/runs", json=body, headers=service.headers()
    )


async def test_beyond_the_limit_a_run_is_refused_until_a_place_frees_up(
    http: httpx.AsyncClient, one_run_service: Service
) -> None:
    service = one_run_service
    agent_id = await new_agent(http, service)
    run_id = fake_openai.new_id()
    slow = run_input(fake_openai.new_id(), ("m1", "go slowly"), run_id=run_id)
    async with http.stream(
        "POST", f"{service.base_url}/agents/{agent_id}/runs", json=slow, headers=service.headers()
    ) as response:
        lines = response.aiter_lines()
        async for line in lines:
            if '"TEXT_MESSAGE_CONTENT"' in line:
                break
        refused_thread = fake_openai.new_id()

        refused = await post_run(http, service, agent_id, run_input(refused_thread, ("m2", "hi")))

        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["type"] == "/problems/runs-at-capacity"
        assert refused.headers["x-request-id"] == refused.json()["request_id"]
        assert service.rows("SELECT id FROM conversations WHERE id = %s", refused_thread) == []
        # A quick task's run takes a place the same way.
        task = await http.post(
            f"{service.base_url}/agents/{agent_id}/quick-tasks",
            json={"name": "Hello", "prompt": "Say hello."},
            headers=service.headers(),
        )
        assert task.status_code == 201
        refused_task = await http.post(
            f"{service.base_url}/agents/{agent_id}/quick-tasks/{task.json()['id']}/runs",
            json={"parameters": {}},
            headers=service.headers(),
        )
        assert refused_task.status_code == 503
        assert refused_task.headers["retry-after"] == "2"
        # And so does a run at CopilotKit's path, while its other routes are served.
        refused_copilotkit = await http.post(
            f"{service.base_url}/copilotkit/agent/{agent_id}/run",
            json=run_input(refused_thread, ("m3", "hi")),
            headers=service.headers(),
        )
        assert refused_copilotkit.status_code == 503
        info = await http.get(f"{service.base_url}/copilotkit/info", headers=service.headers())
        assert info.status_code == 200
        # Other routes of the agent are not runs: they are served as usual.
        state = await http.get(
            f"{service.base_url}/agents/{agent_id}/state", headers=service.headers()
        )
        assert state.status_code == 200
        cancelled = await http.post(
            f"{service.base_url}/runs/{run_id}/cancel", headers=service.headers()
        )
        assert cancelled.status_code == 202
        async for _line in lines:  # to the end of the cancelled run
            pass

    admitted = await eventually_admitted(http, service, agent_id)
    assert '"RUN_FINISHED"' in admitted.text


async def test_a_request_that_fails_before_its_run_starts_gives_its_place_back(
    http: httpx.AsyncClient, one_run_service: Service
) -> None:
    service = one_run_service
    agent_id = await new_agent(http, service)
    for _ in range(3):
        missing = await post_run(
            http, service, fake_openai.new_id(), run_input(fake_openai.new_id(), ("m1", "hi"))
        )
        assert missing.status_code == 404
        invalid = await post_run(http, service, agent_id, {"threadId": 7})
        assert invalid.status_code == 422
        anonymous = await http.post(
            f"{service.base_url}/agents/{agent_id}/runs",
            json=run_input(fake_openai.new_id(), ("m1", "hi")),
        )
        assert anonymous.status_code == 401

    admitted = await eventually_admitted(http, service, agent_id)
    assert '"RUN_FINISHED"' in admitted.text


async def eventually_admitted(
    http: httpx.AsyncClient, service: Service, agent_id: str
) -> httpx.Response:
    """A run once the previous test's run has ended: its place is given back when its task
    has finished saving, a moment after its last event."""
    for _ in range(100):
        response = await post_run(
            http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "hi"))
        )
        if response.status_code != 503:
            assert response.status_code == 200, response.text
            return response
        await asyncio.sleep(0.05)
    raise AssertionError(f"never admitted: {json.dumps(response.json())}")


async def test_a_service_mounted_under_a_path_prefix_admits_its_runs(
    http: httpx.AsyncClient, test_database: DatabaseUnderTest, model_url: str
) -> None:
    """Behind a proxy that mounts the service under /api (`uvicorn --root-path /api`), the
    door recognises a run by the path the router matches, not the prefixed one."""
    async for service in start_service(
        test_database,
        "admission_prefix",
        root_path="/api",
        openai_base_url=model_url,
        openai_api_key="test-key",
        llm_model="fake-model",
        llm_max_retries=0,
        run_max_concurrent=1,
    ):
        agent_id = await new_agent(http, service)
        for _ in range(2):  # the first run's place comes back for the second
            admitted = await eventually_admitted(http, service, agent_id)
            assert '"RUN_FINISHED"' in admitted.text
