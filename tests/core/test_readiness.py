"""/healthz and /readyz, including a database that goes away and comes back under a running
app: readiness follows it, and requests succeed again without a restart."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import procrastinate
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core import migrations
from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
from app.core.embedded import EmbeddedPostgres, Roles
from app.core.settings import Settings
from app.health.service import check_readiness
from app.jobs import queue
from app.main import create_app


async def test_healthz_answers_without_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_the_migration_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["migration"] == migrations.head_revision()


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/readyz" in schema["paths"]


async def test_readyz_is_503_when_the_schema_is_not_at_head(app: FastAPI) -> None:
    readiness = await check_readiness(app.state.engine, head_revision="a-newer-release")
    assert readiness.ready is False
    assert readiness.migration == migrations.head_revision()
    assert readiness.expected_migration == "a-newer-release"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, Roles]]:
    """A cluster of the test's own: it is stopped and started under the app."""
    server = EmbeddedPostgres(tmp_path / "pg")
    roles = Roles(database="ajc", owner="ajc_owner", app="ajc_app")
    server.start()
    try:
        server.bootstrap(roles)
        migrations.upgrade(server.url(roles.owner, roles.database), roles.app)
        yield server, roles
    finally:
        server.stop()


recorded: list[str] = []


@pytest.fixture
async def own_client(
    own_server: tuple[EmbeddedPostgres, Roles], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """The app as `ajc serve` runs it, in-process job worker included."""
    server, roles = own_server
    probe_jobs = procrastinate.Blueprint()

    @probe_jobs.task(name="record")
    async def record(item: str) -> None:
        recorded.append(item)

    monkeypatch.setattr(queue, "TASK_BLUEPRINTS", [("probe", lambda: probe_jobs)])
    settings = Settings.model_validate(
        {
            "app_env": "test",
            "database_url": server.url(roles.app, roles.database),
            "database_pool_timeout_seconds": 2,
            "worker_shutdown_timeout_seconds": 2,
        }
    )
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_readyz_follows_the_database_down_and_back_up(
    own_server: tuple[EmbeddedPostgres, Roles], own_client: httpx.AsyncClient
) -> None:
    server, _ = own_server
    assert (await own_client.get("/readyz")).status_code == 200

    server.stop()
    down = await own_client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["database"] == "unreachable"
    assert (await own_client.get("/healthz")).status_code == 200

    server.start()
    # The pool still holds connections to the old server: pre-ping replaces them.
    up = await own_client.get("/readyz")
    assert up.status_code == 200, up.text
    assert up.json()["ready"] is True


async def test_page_loads_are_served_again_after_a_database_restart(
    own_server: tuple[EmbeddedPostgres, Roles], own_client: httpx.AsyncClient
) -> None:
    """Reads on the driver (asyncpg's pool) reconnect too: the old server's connections are
    replaced, not handed to a request."""
    server, _ = own_server
    settings = own_client._transport.app.state.settings  # type: ignore[attr-defined]
    token = sign_session_token(
        development_key_pair(settings.data_dir).private_pem,
        issuer=DEVELOPMENT_ISSUER,
        user_id="user_restart",
        organization_id="org_restart",
        role="admin",
    )
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(2):  # the identity is resolved, then cached: the second is a driver read
        assert (await own_client.get("/me", headers=headers)).status_code == 200

    server.stop()
    await asyncio.sleep(0.5)  # the loop sees the connections close, as while a server restarts
    server.start()

    response = await own_client.get("/me", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["organization"]["clerk_id"] == "org_restart"


async def test_the_in_process_worker_recovers_after_a_database_restart(
    own_server: tuple[EmbeddedPostgres, Roles], own_client: httpx.AsyncClient
) -> None:
    server, _ = own_server
    server.stop()
    server.start()
    app = own_client._transport.app  # type: ignore[attr-defined]
    await app.state.job_queue.configure_task("probe:record").defer_async(item="after restart")
    # The worker notices its dead connection, restarts, and runs the job: bounded wait.
    for _ in range(300):
        if recorded:
            break
        await asyncio.sleep(0.1)
    assert recorded == ["after restart"]


async def test_run_cancel_notices_reach_this_process_again_after_a_database_restart(
    own_server: tuple[EmbeddedPostgres, Roles], own_client: httpx.AsyncClient
) -> None:
    """The listener of `app.runs.cancellation` reconnects: a cancel sent by another process
    after the restart still stops the run this process streams."""
    server, roles = own_server
    app = own_client._transport.app  # type: ignore[attr-defined]
    server.stop()
    server.start()
    run = asyncio.create_task(asyncio.sleep(60))
    registry = app.state.run_registry
    key = (uuid.uuid4(), uuid.uuid4(), "run-after-restart")
    registry.add(key, run, registry.admit())
    notice = f"{key[0]}:{key[1]}:{key[2]}"  # what app.runs.cancellation.notify sends
    url = server.url(roles.app, roles.database, driver="postgresql")
    for _ in range(100):  # notices sent before the listener is back are lost: repeat
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("SELECT pg_notify('run_cancel', $1)", notice)
        finally:
            await connection.close()
        await asyncio.sleep(0.1)
        if run.done():
            break
    assert run.cancelled()
