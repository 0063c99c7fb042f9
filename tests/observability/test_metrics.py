"""`GET /metrics`: who may read it, and what it says (in-process, on the test's transaction).

The metrics live in the test process (one process: prometheus-client's default registry) and
every test's requests add to them, so each test reads what its own requests changed."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.outbox import defer_in_transaction
from tests import clerk, prometheus
from tests.conftest import DatabaseUnderTest, client_for, running_app

TOKEN = "a-token-for-the-scraper"
REQUESTS = "ajc_http_request_duration_seconds_count"


async def scrape(client: httpx.AsyncClient) -> prometheus.Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return prometheus.parse(response.text)


@pytest.fixture
async def guarded_app(
    test_database: DatabaseUnderTest, session: AsyncSession, fake_clerk: clerk.FakeClerk
) -> AsyncIterator[FastAPI]:
    settings = test_database.settings(metrics_token=TOKEN)
    async with running_app(settings, session, fake_clerk.transport) as app:
        yield app


async def test_metrics_refuse_a_scraper_without_the_token(guarded_app: FastAPI) -> None:
    async with client_for(guarded_app) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        other_scheme = await client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})

    for response in (missing, wrong, other_scheme):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/metrics-token-required"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_metrics_answer_the_token_in_prometheus_text_format(guarded_app: FastAPI) -> None:
    async with client_for(guarded_app) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    for family, kind in [
        ("ajc_http_request_duration_seconds", "histogram"),
        ("ajc_runs_active", "gauge"),
        ("ajc_runs_admitted_total", "counter"),
        ("ajc_runs_refused_total", "counter"),
        ("ajc_run_tokens_streamed_total", "counter"),
        ("ajc_run_time_to_first_token_seconds", "histogram"),
        ("ajc_event_loop_lag_seconds", "histogram"),
        ("ajc_db_pool_connections_in_use", "gauge"),
        ("ajc_db_pool_waiting", "gauge"),
        ("ajc_job_queue_jobs", "gauge"),
        ("ajc_job_duration_seconds", "histogram"),
        ("ajc_knowledge_chunks_embedded_total", "counter"),
    ]:
        assert f"# TYPE {family} {kind}\n" in response.text, family


async def test_without_a_token_metrics_answer_loopback_clients_only(app: FastAPI) -> None:
    elsewhere = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://test") as client:
        refused = await client.get("/metrics")
    async with client_for(app) as client:  # from 127.0.0.1
        answered = await client.get("/metrics")

    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/metrics-loopback-only"
    assert answered.status_code == 200


async def test_metrics_are_not_part_of_the_tenants_api_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "/metrics" not in document["paths"]


async def test_request_latency_is_labelled_by_route_template_never_by_path(
    client: httpx.AsyncClient, fake_clerk: clerk.FakeClerk
) -> None:
    agent_id = str(uuid.uuid4())
    headers = fake_clerk.headers("user_metrics", "org_metrics")
    before = await scrape(client)

    assert (await client.get(f"/agents/{agent_id}", headers=headers)).status_code == 404
    assert (await client.get(f"/nothing/here/{agent_id}")).status_code == 404
    after = await scrape(client)

    route = {"method": "GET", "route": "/agents/{agent_id}", "status": "404"}
    assert (
        prometheus.value(after, REQUESTS, **route)
        == prometheus.value(before, REQUESTS, **route) + 1
    )
    unrouted = {"method": "GET", "route": "(unrouted)", "status": "404"}
    assert (
        prometheus.value(after, REQUESTS, **unrouted)
        == prometheus.value(before, REQUESTS, **unrouted) + 1
    )
    assert not any(agent_id in value for _, labels in after for _, value in labels)


async def test_the_job_queue_is_counted_at_the_scrape_by_queue_and_status(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    waiting = {"queue": "default", "status": "todo"}
    before = prometheus.value(await scrape(client), "ajc_job_queue_jobs", **waiting)

    await defer_in_transaction(
        session,
        "knowledge:ingest_source",
        {"organization_id": str(uuid.uuid4()), "source_id": str(uuid.uuid4())},
    )

    assert prometheus.value(await scrape(client), "ajc_job_queue_jobs", **waiting) == before + 1


async def test_each_process_samples_its_event_loop_and_database_pools(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    await asyncio.sleep(1.2)  # the monitor samples twice a second
    after = await scrape(client)

    lag = "ajc_event_loop_lag_seconds_count"
    assert prometheus.value(after, lag) >= prometheus.value(before, lag) + 2
    assert prometheus.label_values(after, "ajc_db_pool_connections_in_use", "pool") >= {
        "orm",
        "driver",
    }
    assert prometheus.label_values(after, "ajc_db_pool_waiting", "pool") >= {"orm", "driver"}
