"""Budgets under real runs: a run reserves its worst case before each model call and
settles what it used with its usage event; what does not fit is refused with 429 before the
stream starts (or ends the run, for a later round); concurrent runs never take the spend
over the limit; thresholds notify once; a model without a price under a cost budget is
refused."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.llm.context import bound_call_tokens
from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, run_input, run_scheduled_quick_tasks, start_service

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def service(test_database: DatabaseUnderTest, model_url: str) -> AsyncIterator[Service]:
    """The environment's model priced by LLM_PRICES (USD 1 per million input tokens, 2 per
    million output); no rate limits: the concurrency test sends twenty runs at once."""
    async for running in start_service(
        test_database,
        "budgets",
        openai_base_url=model_url,
        openai_api_key="test-key",
        llm_model="fake-model",
        llm_max_retries=0,
        llm_prices={"fake-model": {"input": 1.0, "cached_input": 0.5, "output": 2.0}},
        rate_limits_enabled=False,
        run_max_concurrent=64,
        egress_allow_private_addresses=True,  # an organization's model on the fake provider
    ):
        yield running


class Org:
    """An organization of its own per test (its own windows), and its admin."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.name = f"org_{uuid.uuid4().hex[:10]}"
        self.headers = service.clerk.headers(f"admin_{self.name}", self.name, "admin")

    def member(self, user: str) -> dict[str, str]:
        return self.service.clerk.headers(f"{user}_{self.name}", self.name, "member")

    def url(self, path: str) -> str:
        return f"{self.service.base_url}{path}"


async def new_agent(http: httpx.AsyncClient, org: Org, **fields: Any) -> str:
    response = await http.post(
        org.url("/agents"),
        json={"slug": f"a-{uuid.uuid4().hex[:8]}", "name": "Budgeted", **fields},
        headers=org.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def new_budget(http: httpx.AsyncClient, org: Org, **fields: Any) -> dict[str, Any]:
    response = await http.post(org.url("/budgets"), json=fields, headers=org.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def read_budget(http: httpx.AsyncClient, org: Org, budget_id: str) -> dict[str, Any]:
    response = await http.get(org.url(f"/budgets/{budget_id}"), headers=org.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def start(
    http: httpx.AsyncClient,
    org: Org,
    agent_id: str,
    text: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, list[dict[str, Any]], httpx.Response]:
    """A run to its end: its status, its events (a 200's), the response."""
    body = run_input(fake_openai.new_id(), ("m1", text))
    events: list[dict[str, Any]] = []
    async with http.stream(
        "POST", org.url(f"/agents/{agent_id}/runs"), json=body, headers=headers or org.headers
    ) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, events, response
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return 200, events, response


def window_of(service: Service, budget_id: str) -> tuple[int, int]:
    """(spent, reserved) of the budget's window; nothing before its first call."""
    rows = service.rows(
        "SELECT spent, reserved FROM budget_windows WHERE budget_id = %s", budget_id
    )
    return (rows[0][0], rows[0][1]) if rows else (0, 0)


async def settled(service: Service, budget_id: str) -> tuple[int, int]:
    """The window once no reservation is left (runs save their last answer after their
    stream's end)."""
    deadline = time.monotonic() + 20
    while True:
        spent, reserved = window_of(service, budget_id)
        if reserved == 0 or time.monotonic() > deadline:
            return spent, reserved
        await asyncio.sleep(0.1)


def last_request() -> dict[str, Any]:
    return fake_openai.requests_seen[-1]


async def test_a_run_reserves_its_worst_case_then_settles_what_it_used(
    http: httpx.AsyncClient, service: Service
) -> None:
    org = Org(service)
    agent_id = await new_agent(http, org, model_settings={"max_tokens": 200})
    budget = await new_budget(http, org, metric="tokens", limit=1_000_000)

    status, events, _ = await start(http, org, agent_id, "Hi")
    assert status == 200 and events[-1]["type"] == "RUN_FINISHED"

    # The model was asked for no more than the run may produce...
    sent = last_request()
    assert sent["max_tokens"] == 200
    # ...and the window was charged what the provider counted: 12 in, 6 out.
    assert await settled(service, budget["id"]) == (18, 0)
    assert service.rows(
        "SELECT count(*) FROM budget_reservations r JOIN budget_windows w ON w.id = r.window_id "
        "WHERE w.budget_id = %s",
        budget["id"],
    ) == [(0,)]
    read = await read_budget(http, org, budget["id"])
    assert read["current_window"]["spent"] == 18
    assert read["current_window"]["remaining"] == 1_000_000 - 18


async def test_max_tokens_is_clamped_to_what_the_budget_has_left(
    http: httpx.AsyncClient, service: Service
) -> None:
    org = Org(service)
    agent_id = await new_agent(http, org, model_settings={"max_tokens": 1000})
    budget = await new_budget(http, org, metric="tokens", limit=10_000)
    status, _, _ = await start(http, org, agent_id, "Hi")
    assert status == 200
    bound = bound_call_tokens(last_request()["messages"])
    spent, _ = await settled(service, budget["id"])

    # Room for the same input and 500 tokens of output: the run may ask for 500, not 1000.
    patched = await http.patch(
        org.url(f"/budgets/{budget['id']}"),
        json={"limit": spent + bound + 500},
        headers=org.headers,
    )
    assert patched.status_code == 200, patched.text
    status, _, _ = await start(http, org, agent_id, "Hi")
    assert status == 200
    assert last_request()["max_tokens"] == 500


async def test_a_run_that_does_not_fit_is_refused_before_its_stream_with_what_and_when(
    http: httpx.AsyncClient, service: Service
) -> None:
    org = Org(service)
    agent_id = await new_agent(http, org)
    budget = await new_budget(http, org, metric="cost", limit=20)  # USD 0.00002
    requests_before = len(fake_openai.requests_seen)

    status, events, response = await start(http, org, agent_id, "Hi")

    assert status == 429 and events == []
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/budget-exceeded"
    assert (problem["budget_id"], problem["metric"], problem["limit"]) == (budget["id"], "cost", 20)
    assert (problem["spent"], problem["reserved"]) == (0, 0)
    assert problem["resets_at"] == budget["current_window"]["resets_at"].replace("Z", "+00:00")
    assert "USD 0.000020" in problem["detail"] and problem["resets_at"] in problem["detail"]
    assert 0 < int(response.headers["retry-after"]) <= 31 * 24 * 3600
    # Nothing was called, and nothing of the request was kept.
    assert len(fake_openai.requests_seen) == requests_before
    assert service.rows(
        "SELECT count(*) FROM conversations WHERE organization_id = "
        "(SELECT id FROM organizations WHERE clerk_id = %s)",
        org.name,
    ) == [(0,)]


async def test_twenty_concurrent_runs_against_a_budget_that_fits_five(
    http: httpx.AsyncClient, service: Service
) -> None:
    org = Org(service)
    agent_id = await new_agent(http, org, model_settings={"max_tokens": 100})
    budget = await new_budget(http, org, metric="tokens", limit=1_000_000)
    # What one run reserves: seen while it streams (every run here sends the same request).
    slow = "go slowly 100"
    first = asyncio.create_task(start(http, org, agent_id, slow))
    deadline = time.monotonic() + 10
    while (reserved := window_of(service, budget["id"])[1]) == 0:
        assert time.monotonic() < deadline, "the first run reserved nothing"
        await asyncio.sleep(0.05)
    assert (await first)[0] == 200
    spent, _ = await settled(service, budget["id"])
    # Room for five reservations and half of a sixth: the sixth's output would be below
    # the least worth a call.
    limit = spent + 5 * reserved + reserved // 2
    await http.patch(
        org.url(f"/budgets/{budget['id']}"), json={"limit": limit}, headers=org.headers
    )

    results = await asyncio.gather(
        *(start(http, org, agent_id, slow, org.member(f"user{i}")) for i in range(20))
    )

    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * 5 + [429] * 15
    for status, events, response in results:
        if status == 200:
            assert events[-1]["type"] == "RUN_FINISHED"
            text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
            assert text.count("t") == 100  # every admitted run got all of its tokens
        else:
            assert response.json()["type"] == "/problems/budget-exceeded"
    spent_after, reserved_after = await settled(service, budget["id"])
    assert reserved_after == 0
    assert spent_after <= limit
    assert spent_after == spent + 5 * (12 + 100)
    recorded = service.rows(
        "SELECT count(*) FROM usage_events WHERE organization_id = "
        "(SELECT id FROM organizations WHERE clerk_id = %s)",
        org.name,
    )
    assert recorded == [(6,)]  # the measuring run and the five


async def test_soft_thresholds_notify_once_per_window_and_warn_the_run_that_crossed(
    http: httpx.AsyncClient, service: Service
) -> None:
    org = Org(service)
    agent_id = await new_agent(http, org, model_settings={"max_tokens": 50})
    # Each run costs 18 tokens (12 in, 6 out): the first crosses 10%, the second nothing
    # new, the fifth 50%.
    budget = await new_budget(http, org, metric="tokens", limit=180, thresholds=[50, 10])
    assert budget["thresholds"] == [10, 50]

    warnings = []
    for _ in range(5):
        status, events, response = await start(http, org, agent_id, "Hi")
        assert status == 200, response.text
        warnings.append(
            [e["value"] for e in events if e["type"] == "CUSTOM" and e["name"] == "budget.warning"]
        )
    assert [[w["threshold"] for w in found] for found in warnings] == [[10], [], [], [], [50]]
    assert warnings[0][0]["budget_id"] == budget["id"]
    assert (warnings[4][0]["spent"], warnings[4][0]["limit"]) == (90, 180)
    listed = await http.get(org.url("/notifications"), headers=org.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(item["kind"], item["data"]["threshold"]) for item in items] == [
        ("budget.warning", 50),
        ("budget.warning", 10),
    ]
    assert "50% used" in items[0]["message"]
    # A member sees none of the organization's own.
    mine = await http.get(org.url("/notifications"), headers=org.member("someone"))
    assert mine.status_code == 200 and mine.json()["items"] == []


async def test_a_members_budget_limits_that_member_only(
    http: httpx.AsyncClient, service: Service
) -> None:
    org = Org(service)
    agent_id = await new_agent(http, org)
    spender = org.member("spender")
    me = await http.get(org.url("/me"), headers=spender)
    user_id = me.json()["user"]["id"]
    await new_budget(http, org, metric="tokens", limit=10, user_id=user_id)

    refused, _, response = await start(http, org, agent_id, "Hi", spender)
    assert refused == 429
    assert "Your monthly tokens budget" in response.json()["detail"]
    other, _, _ = await start(http, org, agent_id, "Hi", org.member("other"))
    assert other == 200


async def test_a_later_round_that_does_not_fit_ends_the_run_and_keeps_the_answer(
    http: httpx.AsyncClient, service: Service
) -> None:
    org = Org(service)
    agent_id = await new_agent(http, org, capabilities=["update_state"])
    budget = await new_budget(http, org, metric="tokens", limit=1_000_000)
    # Once with room, to see what the first round sends.
    status, events, _ = await start(http, org, agent_id, "remember milk")
    assert status == 200 and events[-1]["type"] == "RUN_FINISHED"
    first_round = fake_openai.requests_seen[-2]
    bound = bound_call_tokens(first_round["messages"], first_round["tools"])
    spent, _ = await settled(service, budget["id"])
    # Room for the first round with the least output, not for the second (longer) one.
    await http.patch(
        org.url(f"/budgets/{budget['id']}"),
        json={"limit": spent + bound + 64},
        headers=org.headers,
    )

    status, events, _ = await start(http, org, agent_id, "remember milk")

    assert status == 200
    assert [e["type"] for e in events if e["type"].startswith("TOOL_CALL")][-1] == (
        "TOOL_CALL_RESULT"
    )
    assert events[-1]["type"] == "RUN_ERROR"
    assert events[-1]["code"] == "budget-exceeded"
    assert "budget" in events[-1]["message"]
    spent_after, reserved_after = await settled(service, budget["id"])
    assert reserved_after == 0 and spent < spent_after <= spent + bound + 64


async def test_a_model_without_a_price_under_a_cost_budget_is_refused(
    http: httpx.AsyncClient, service: Service, model_url: str
) -> None:
    org = Org(service)
    created = await http.post(
        org.url("/models"),
        json={
            "name": "unpriced",
            "provider": "openai-compatible",
            "provider_model": "fake-model",
            "endpoint": model_url,
            "capabilities": ["chat"],
        },
        headers=org.headers,
    )
    assert created.status_code == 201, created.text
    agent_id = await new_agent(http, org, chat_model_id=created.json()["id"])
    await new_budget(http, org, metric="tokens", limit=1_000_000)
    status, _, _ = await start(http, org, agent_id, "Hi")
    assert status == 200  # a token budget needs no price

    await new_budget(http, org, metric="cost", limit=1_000_000)
    status, _, response = await start(http, org, agent_id, "Hi")
    assert status == 409
    assert response.json()["type"] == "/problems/model-unpriced"
    assert "no price" in response.json()["detail"]


async def test_a_scheduled_quick_task_a_budget_refuses_leaves_nothing(
    http: httpx.AsyncClient, service: Service
) -> None:
    org = Org(service)
    agent_id = await new_agent(http, org)
    created = await http.post(
        org.url(f"/agents/{agent_id}/quick-tasks"),
        json={"name": "Morning brief", "prompt": "Brief me.", "schedule": "0 7 * * *"},
        headers=org.headers,
    )
    assert created.status_code == 201, created.text
    service.rows(
        "UPDATE agent_quick_tasks SET next_run_at = now() - interval '1 minute' "
        "WHERE id = %s RETURNING id",
        created.json()["id"],
    )
    await new_budget(http, org, metric="tokens", limit=10)

    await run_scheduled_quick_tasks(service)

    assert service.rows("SELECT count(*) FROM conversations WHERE agent_id = %s", agent_id) == [
        (0,)
    ]
    [(next_run,)] = service.rows(
        "SELECT next_run_at FROM agent_quick_tasks WHERE id = %s", created.json()["id"]
    )
    assert next_run > datetime.now(UTC)  # it tries again at its next tick
