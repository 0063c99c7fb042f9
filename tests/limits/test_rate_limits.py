"""Rate limits per user and per organization: a 429 problem with Retry-After beyond them,
counted in PostgreSQL so that every process of the service shares them, refilling with
time, and never on the webhook.

Most tests run against a service with a database of its own (the limiter counts on
connections of its own, outside the request's transaction), with small limits over a short
period; each test acts for organizations of its own."""

import asyncio
import math
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from app.core.errors import PROBLEM_JSON
from app.core.settings import Settings
from app.limits import dependencies
from tests import clerk
from tests.conftest import DatabaseUnderTest
from tests.core.test_unit_of_work import api_routes
from tests.runs.conftest import Service, serve, start_service

PERIOD_SECONDS = 3.0
SEARCHES_PER_USER = 2
SEARCHES_PER_ORGANIZATION = 3


@pytest.fixture(scope="module")
async def service(test_database: DatabaseUnderTest) -> AsyncIterator[Service]:
    with tempfile.TemporaryDirectory(prefix="ajc-limits-") as workspaces:
        async for running in start_service(
            test_database,
            "limits",
            workspaces_dir=Path(workspaces),
            clerk_webhook_signing_secret=clerk.WEBHOOK_SECRET,
            rate_limit_period_seconds=PERIOD_SECONDS,
            rate_limit_searches_per_user=SEARCHES_PER_USER,
            rate_limit_searches_per_organization=SEARCHES_PER_ORGANIZATION,
            rate_limit_runs_per_user=1,
            rate_limit_runs_per_organization=1,
            rate_limit_uploads_per_user=1,
            rate_limit_uploads_per_organization=1,
            rate_limit_ingestions_per_user=1,
            rate_limit_ingestions_per_organization=1,
        ):
            yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


class Organization:
    """A fresh organization on the service, with an agent its members may search."""

    def __init__(self, service: Service, agent_id: str, clerk_id: str) -> None:
        self.service = service
        self.agent_id = agent_id
        self.clerk_id = clerk_id

    def member(self, name: str) -> dict[str, str]:
        return self.service.clerk.headers(f"user_{name}_{self.clerk_id}", self.clerk_id, "member")

    async def search(
        self, http: httpx.AsyncClient, headers: dict[str, str], base_url: str | None = None
    ) -> httpx.Response:
        return await http.post(
            f"{base_url or self.service.base_url}/agents/{self.agent_id}/search",
            json={"query": "leave policy"},
            headers=headers,
        )


async def new_organization(http: httpx.AsyncClient, service: Service) -> Organization:
    clerk_id = f"org_{uuid.uuid4().hex[:12]}"
    created = await http.post(
        f"{service.base_url}/agents",
        json={
            "slug": f"l-{uuid.uuid4().hex[:8]}",
            "name": "Limited",
            "embedding_model": "feature-hashing-384",
        },
        headers=service.clerk.headers(f"user_admin_{clerk_id}", clerk_id, "admin"),
    )
    assert created.status_code == 201, created.text
    return Organization(service, created.json()["id"], clerk_id)


def assert_rate_limited(response: httpx.Response, applies_to: str) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= math.ceil(PERIOD_SECONDS)
    body = response.json()
    assert body["type"] == "/problems/rate-limited"
    assert body["status"] == 429
    assert (body["limit"], body["applies_to"]) == ("searches", applies_to)
    return int(retry_after)


async def test_searches_under_the_users_limit_pass_and_the_next_is_a_429_with_retry_after(
    http: httpx.AsyncClient, service: Service
) -> None:
    organization = await new_organization(http, service)
    member = organization.member("a")

    for _ in range(SEARCHES_PER_USER):
        passed = await organization.search(http, member)
        assert passed.status_code == 200, passed.text

    assert_rate_limited(await organization.search(http, member), "user")


async def test_a_second_user_is_held_by_the_organizations_limit_which_refusals_do_not_spend(
    http: httpx.AsyncClient, service: Service
) -> None:
    organization = await new_organization(http, service)
    first, second = organization.member("first"), organization.member("second")
    for _ in range(SEARCHES_PER_USER):
        assert (await organization.search(http, first)).status_code == 200
    # Refused by their own limit, the first user spends nothing of the organization's.
    for _ in range(5):
        assert_rate_limited(await organization.search(http, first), "user")

    assert (await organization.search(http, second)).status_code == 200
    assert_rate_limited(await organization.search(http, second), "organization")


async def test_another_organization_is_not_affected(
    http: httpx.AsyncClient, service: Service
) -> None:
    busy, other = await new_organization(http, service), await new_organization(http, service)
    for name in ("a", "b", "c"):
        await organization_search_until_refused(http, busy, busy.member(name))

    assert (await other.search(http, other.member("a"))).status_code == 200


async def organization_search_until_refused(
    http: httpx.AsyncClient, organization: Organization, headers: dict[str, str]
) -> None:
    for _ in range(SEARCHES_PER_USER + 1):
        if (await organization.search(http, headers)).status_code == 429:
            return
    pytest.fail("never refused")


async def test_the_limit_holds_across_two_instances_of_the_service(
    http: httpx.AsyncClient, service: Service
) -> None:
    organization = await new_organization(http, service)
    member = organization.member("a")
    async for second in serve(service.settings, service.owner_url, service.clerk):
        assert (await organization.search(http, member)).status_code == 200
        assert (await organization.search(http, member, second.base_url)).status_code == 200

        assert_rate_limited(await organization.search(http, member), "user")
        assert_rate_limited(await organization.search(http, member, second.base_url), "user")


async def test_requests_pass_again_once_the_limit_has_refilled(
    http: httpx.AsyncClient, service: Service
) -> None:
    organization = await new_organization(http, service)
    member = organization.member("a")
    for _ in range(SEARCHES_PER_USER):
        assert (await organization.search(http, member)).status_code == 200
    retry_after = assert_rate_limited(await organization.search(http, member), "user")

    await asyncio.sleep(retry_after)

    assert (await organization.search(http, member)).status_code == 200


async def test_the_webhook_is_never_limited(http: httpx.AsyncClient, service: Service) -> None:
    for _ in range(5):
        body, headers = clerk.signed_webhook(clerk.fixture("session.created"))
        delivered = await http.post(
            f"{service.base_url}/webhooks/clerk", content=body, headers=headers
        )
        assert delivered.status_code < 300, delivered.text


async def test_runs_uploads_and_ingestions_are_limited_too(
    http: httpx.AsyncClient, service: Service
) -> None:
    organization = await new_organization(http, service)
    admin = service.clerk.headers(f"user_admin_{organization.clerk_id}", organization.clerk_id)
    base = f"{service.base_url}/agents/{organization.agent_id}"
    # Refused or not, each request below is counted before its body is looked at: an empty
    # JSON body is as good as a real one for the limiter's first count.
    first = await http.post(f"{base}/knowledge-sources", json={}, headers=admin)
    assert first.status_code == 422
    refused = await http.post(f"{base}/knowledge-sources", json={}, headers=admin)
    assert refused.status_code == 429
    assert refused.json()["limit"] == "ingestions"

    # A knowledge file is an upload and an ingestion: the spent ingestion refuses it.
    knowledge_file = await http.post(
        f"{base}/knowledge-sources/files", files={"file": ("a.txt", b"a")}, headers=admin
    )
    assert knowledge_file.status_code == 429
    assert knowledge_file.json()["limit"] == "ingestions"

    missing_conversation = f"{service.base_url}/conversations/{uuid.uuid4()}/files"
    assert (
        await http.post(missing_conversation, files={"file": ("a.txt", b"a")}, headers=admin)
    ).status_code == 404
    upload = await http.post(missing_conversation, files={"file": ("a.txt", b"a")}, headers=admin)
    assert upload.status_code == 429
    assert upload.json()["limit"] == "uploads"

    assert (await http.post(f"{base}/runs", json={}, headers=admin)).status_code == 422
    run = await http.post(f"{base}/runs", json={}, headers=admin)
    assert run.status_code == 429
    assert run.json()["limit"] == "runs"


LIMITED_ROUTES = {
    ("POST", "/agents/{agent_id}/runs"): dependencies.limit_runs,
    ("POST", "/agents/{agent_id}/quick-tasks/{task_id}/runs"): dependencies.limit_runs,
    ("POST", "/copilotkit/agent/{agent_id}/run"): dependencies.limit_runs,
    ("POST", "/conversations/{conversation_id}/files"): dependencies.limit_uploads,
    ("POST", "/agents/{agent_id}/knowledge-sources/files"): dependencies.limit_knowledge_files,
    ("POST", "/agents/{agent_id}/knowledge-sources"): dependencies.limit_ingestions,
    (
        "POST",
        "/agents/{agent_id}/knowledge-sources/{source_id}/ingest",
    ): dependencies.limit_ingestions,
    ("POST", "/agents/{agent_id}/search"): dependencies.limit_searches,
}
LIMITS = {
    dependencies.limit_runs,
    dependencies.limit_uploads,
    dependencies.limit_knowledge_files,
    dependencies.limit_ingestions,
    dependencies.limit_searches,
}


def limits_of(dependant: Dependant) -> set[object]:
    found: set[object] = set()
    for dependency in dependant.dependencies:
        if dependency.call in LIMITS:
            found.add(dependency.call)
        found |= limits_of(dependency)
    return found


def test_exactly_the_costly_routes_carry_a_limit_and_the_webhook_none(app: FastAPI) -> None:
    limited = {}
    for route in api_routes(app.routes):
        for method in route.methods or ():
            if found := limits_of(route.dependant):
                limited[(method, route.path)] = found
    assert limited == {route: {limit} for route, limit in LIMITED_ROUTES.items()}
    assert not any(path == "/webhooks/clerk" for _, path in limited)


@pytest.fixture
def settings(test_database: DatabaseUnderTest, tmp_path: Path) -> Settings:
    return test_database.settings(
        workspaces_dir=tmp_path / "workspaces", rate_limit_searches_per_user=1
    )


async def test_the_limit_counts_inside_the_tests_transaction_too(
    client: httpx.AsyncClient, fake_clerk: clerk.FakeClerk
) -> None:
    """With the suite's usual fixtures (one rolled-back transaction per test), the limiter
    counts in the test's transaction, within the request's savepoint (a request that fails
    takes its count back there): limits apply, and nothing outlives the test."""
    headers = fake_clerk.headers("user_tx", "org_tx", "admin")
    agent = await client.post(
        "/agents",
        json={"slug": "tx", "name": "Tx", "embedding_model": "feature-hashing-384"},
        headers=headers,
    )
    search = f"/agents/{agent.json()['id']}/search"
    counted = await client.post(search, json={"query": "x"}, headers=headers)
    assert counted.status_code == 200, counted.text
    refused = await client.post(search, json={"query": "x"}, headers=headers)
    assert refused.status_code == 429
