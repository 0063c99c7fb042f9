"""Fixtures for runs: the service on a loopback port with a database of its own (a run saves
on sessions of its own, so its rows must commit), beside a fake OpenAI-compatible server."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from app.core import migrations
from app.core.db import Database, create_driver_pool, create_engine, create_sessionmaker
from app.core.settings import Settings
from app.files.backends import create_storage
from app.jobs.queue import create_job_queue
from app.jobs.worker import job_context
from app.knowledge.embedders import Embedders
from app.llm.clients import ModelClients
from app.llm.platform import sync_with_environment
from app.main import create_app
from app.secrets.keyring import Keyring
from app.secrets.service import Vault
from tests import clerk, fake_openai
from tests.conftest import DatabaseUnderTest


class Service:
    def __init__(
        self,
        base_url: str,
        owner_url: str,
        fake_clerk: clerk.FakeClerk,
        settings: Settings,
        app: FastAPI | None = None,
    ) -> None:
        self.base_url = base_url
        self.app = app  # for tests that reach into the process (its pools)
        self.app_url = settings.database_url or ""
        self.settings = settings
        self.owner_url = owner_url.replace("postgresql+asyncpg://", "postgresql://")
        self.clerk = fake_clerk

    def headers(self, user: str = "user_runner", org: str = "org_runs") -> dict[str, str]:
        return self.clerk.headers(user, org, "admin")

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.owner_url) as conn:
            return conn.execute(sql, params).fetchall()


async def start_service(
    test_database: DatabaseUnderTest, name: str, root_path: str = "", **settings: Any
) -> AsyncIterator[Service]:
    fake_clerk = clerk.FakeClerk()
    with test_database.scratch_database(name) as roles:
        owner_url = test_database.url(roles.owner, roles.database)
        await asyncio.to_thread(migrations.upgrade, owner_url, roles.app)
        values = {
            "app_env": "test",
            "database_url": test_database.url(roles.app, roles.database),
            "database_app_role": roles.app,
            "run_worker_in_process": False,
            "clerk_issuer": clerk.ISSUER,
            "clerk_authorized_parties": clerk.AUTHORIZED_PARTY,
            "run_heartbeat_seconds": 0.5,
            **settings,
        }
        settings_under_test = Settings.model_validate(values)
        # What `ajc migrate` does after the migrations: the environment's model registered.
        await sync_with_environment(owner_url, settings_under_test)
        async for service in serve(settings_under_test, owner_url, fake_clerk, root_path):
            yield service


async def serve(
    settings: Settings, owner_url: str, fake_clerk: clerk.FakeClerk, root_path: str = ""
) -> AsyncIterator[Service]:
    """The app on a loopback port of its own: also a second process of a running service,
    given that service's settings and Clerk."""
    app = create_app(settings, http_transport=fake_clerk.transport)
    port = fake_openai.free_port()
    server, task = await fake_openai.serve(app, port, root_path)
    try:
        yield Service(f"http://127.0.0.1:{port}", owner_url, fake_clerk, settings, app)
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def model_url() -> AsyncIterator[str]:
    port = fake_openai.free_port()
    server, task = await fake_openai.serve(fake_openai.app, port)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    await task


@pytest.fixture(scope="session")
async def service(test_database: DatabaseUnderTest, model_url: str) -> AsyncIterator[Service]:
    async for running in start_service(
        test_database,
        "runs",
        openai_base_url=model_url,
        openai_api_key="test-key",
        llm_model="fake-model",
        llm_max_retries=0,
    ):
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def new_agent(http: httpx.AsyncClient, service: Service, **fields: Any) -> str:
    response = await http.post(
        f"{service.base_url}/agents",
        json={"slug": f"a-{uuid.uuid4().hex[:8]}", "name": "Runner", **fields},
        headers=service.headers(),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def run_input(
    thread_id: str, *messages: tuple[str, str], run_id: str | None = None
) -> dict[str, Any]:
    return {
        "threadId": thread_id,
        "runId": run_id or fake_openai.new_id(),
        "messages": [{"id": mid, "role": "user", "content": text} for mid, text in messages],
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }


async def run_scheduled_quick_tasks(service: Service, passes: int = 1) -> None:
    """The job worker's scheduler on the service's database, `passes` times, each running
    the jobs it defers (the quick tasks due) to their end."""
    settings = Settings.model_validate(
        {"database_url": service.app_url, "llm_model": "fake-model", "run_max_seconds": 30}
    )
    engine = create_engine(service.app_url, settings)
    sessionmaker = create_sessionmaker(engine)
    driver_pool = await create_driver_pool(service.app_url, settings)
    # The worker's model clients: the model comes from the registry, the service's settings'
    # (the environment's model, registered by the service fixture).
    model_clients = ModelClients(service.settings, Vault(Keyring.from_settings(service.settings)))
    context = job_context(
        sessionmaker,
        Database(sessionmaker, driver_pool, settings.database_pool_timeout_seconds),
        settings,
        model_clients,
        Embedders(settings),
        create_storage(settings),
    )
    queue = create_job_queue(service.app_url)
    try:
        async with queue.open_async():
            for _ in range(passes):
                await queue.configure_task("runs:schedule_quick_tasks").defer_async(timestamp=0)
                await queue.run_worker_async(
                    wait=False, install_signal_handlers=False, additional_context=context
                )
    finally:
        await model_clients.close()
        await driver_pool.close()
        await engine.dispose()
