"""A run's metrics, read from the running service's `/metrics` as a scraper on the same machine
would (no METRICS_TOKEN: loopback only)."""

import asyncio
import json

import httpx
import pytest

from tests import fake_openai, prometheus
from tests.runs.conftest import Service, new_agent, run_input

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def scrape(http: httpx.AsyncClient, service: Service) -> prometheus.Samples:
    response = await http.get(f"{service.base_url}/metrics")
    assert response.status_code == 200, response.text
    return prometheus.parse(response.text)


async def test_a_run_counts_its_admission_its_tokens_and_its_first_token(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    before = await scrape(http, service)

    events = []
    async with http.stream(
        "POST",
        f"{service.base_url}/agents/{agent_id}/runs",
        json=run_input(fake_openai.new_id(), ("m1", "Hi there")),
        headers=service.headers(),
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: "))["type"])
    after = await scrape(http, service)

    def moved(name: str, **labels: str) -> float:
        return prometheus.value(after, name, **labels) - prometheus.value(before, name, **labels)

    assert events[-1] == "RUN_FINISHED"
    # One per chunk of the model's answer, however the relay grouped them into writes.
    assert moved("ajc_run_tokens_streamed_total") == len(fake_openai.ANSWER)
    assert moved("ajc_run_time_to_first_token_seconds_count") == 1
    assert moved("ajc_run_time_to_first_token_seconds_sum") > 0
    assert moved("ajc_runs_admitted_total") == 1
    run_route = {"method": "POST", "route": "/agents/{agent_id}/runs", "status": "200"}
    assert moved("ajc_http_request_duration_seconds_count", **run_route) == 1

    for _ in range(100):  # the run's task ends just after its last event
        if prometheus.value(await scrape(http, service), "ajc_runs_active") == 0:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the run never left ajc_runs_active")
