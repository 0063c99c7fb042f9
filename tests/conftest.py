"""The test session runs against a real embedded PostgreSQL with pgvector.

One cluster (under `.data/test-postgres`, reused between runs, so a run starts in about a
second), one fresh database per session migrated to head, and each test inside a transaction
that is rolled back at its end: tests are independent and the suite stays fast as it grows.
Requests made through the app use that same transaction (`app.state.database` is replaced), so a
test sees what its requests wrote and nothing survives it.
"""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from app.core import migrations
from app.core.db import Database, driver_connection
from app.core.embedded import EmbeddedPostgres, Roles
from app.core.settings import Settings
from app.main import create_app
from tests import clerk
from tests.node_project import NodeProject, installed_node_project
from tests.seaweedfs import S3Server, running_seaweedfs

TEST_CLUSTER = Path(os.environ.get("TEST_POSTGRES_DIR", ".data/test-postgres"))


@dataclass(frozen=True)
class DatabaseUnderTest:
    server: EmbeddedPostgres
    roles: Roles

    def url(self, role: str, database: str | None = None) -> str:
        return self.server.url(role, database or self.roles.database)

    @property
    def app_url(self) -> str:
        return self.url(self.roles.app)

    @property
    def owner_url(self) -> str:
        return self.url(self.roles.owner)

    @contextmanager
    def platform_agents(self, *visibilities: str) -> Iterator[list[uuid.UUID]]:
        """Platform agents (no owner), committed by the owner role (the application role
        cannot write one), removed afterwards. Use them from session-scoped fixtures: the
        removal waits for every test transaction that holds grants on them."""
        url = self.owner_url.replace("postgresql+asyncpg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as conn:
            ids = []
            for visibility in visibilities:
                row = conn.execute(
                    "INSERT INTO agents (slug, name, visibility) VALUES (%s, %s, %s) RETURNING id",
                    (f"platform-{uuid.uuid4().hex[:8]}", f"Platform {visibility}", visibility),
                ).fetchone()
                assert row is not None
                ids.append(row[0])
            try:
                yield ids
            finally:
                conn.execute("DELETE FROM agents WHERE id = ANY(%s)", (ids,))

    @contextmanager
    def scratch_database(self, purpose: str) -> Iterator[Roles]:
        """A database of its own, for tests whose work must commit; dropped afterwards."""
        roles = Roles(
            database=f"ajc_{purpose}_{os.getpid()}", owner=self.roles.owner, app=self.roles.app
        )
        self.server.drop_database(roles.database)
        self.server.bootstrap(roles)
        try:
            yield roles
        finally:
            self.server.drop_database(roles.database)

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "app_env": "test",
            "database_url": self.app_url,
            "database_owner_url": self.owner_url,
            "database_app_role": self.roles.app,
            # Jobs commit on connections of their own; tests that run them make their own
            # database and worker (tests/jobs).
            "run_worker_in_process": False,
            "clerk_issuer": clerk.ISSUER,
            "clerk_authorized_parties": clerk.AUTHORIZED_PARTY,
            "clerk_webhook_signing_secret": clerk.WEBHOOK_SECRET,
            "clerk_jwks_refresh_interval_seconds": 0,
        }
        values.update(overrides)
        # model_validate, not Settings(): the tests' settings ignore the environment and .env.
        return Settings.model_validate(values)


@pytest.fixture(scope="session", autouse=True)
async def no_task_left_behind() -> AsyncIterator[None]:
    """At the end of the session no task is left on the tests' event loop. pytest-asyncio
    cancels what is left when it closes the loop, and waits for it: one that does not stop (a
    job worker stuck on a stopped server) hangs the run there, after every test passed. The
    tasks are written to stderr first, so a hang shows its cause."""
    yield
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current]
    for task in left:
        print(f"task left behind: {task!r}", file=sys.stderr)
        task.print_stack(file=sys.stderr)
    assert left == []


@pytest.fixture(scope="session")
def test_database() -> Iterator[DatabaseUnderTest]:
    server = EmbeddedPostgres(TEST_CLUSTER)
    server.start()
    roles = Roles(database=f"ajc_test_{os.getpid()}", owner="ajc_owner", app="ajc_app")
    try:
        server.drop_database(roles.database)
        server.bootstrap(roles)
        database = DatabaseUnderTest(server=server, roles=roles)
        migrations.upgrade(database.owner_url, roles.app)
        yield database
        server.drop_database(roles.database)
    finally:
        server.stop(even_if_not_started_here=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS for the session, started by the first test that needs it, with the bucket
    TEST_BUCKET; each test keeps to a key prefix of its own (`StorageUnderTest`)."""
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.create_bucket(TEST_BUCKET)
        yield server


TEST_BUCKET = "ajc-tests"


@dataclass(frozen=True)
class StorageUnderTest:
    """One storage backend, for the tests of files to run on each (`storage_under_test`)."""

    backend: str
    server: S3Server | None

    def settings(self, workspaces_dir: Path) -> dict[str, Any]:
        """The settings that choose this backend; on S3 a new key prefix at each call, so
        what a test finds stored is its own."""
        if self.server is None:
            return {"storage_backend": "local", "workspaces_dir": workspaces_dir}
        return {
            "storage_backend": "s3",
            "workspaces_dir": workspaces_dir,
            "s3_bucket": TEST_BUCKET,
            "s3_endpoint_url": self.server.endpoint_url,
            "s3_region": self.server.region,
            "s3_access_key_id": self.server.access_key,
            "s3_secret_access_key": self.server.secret_key,
            "s3_key_prefix": f"test-{uuid.uuid4().hex[:12]}",
        }


@pytest.fixture(scope="module", params=["local", "s3"])
def storage_under_test(request: pytest.FixtureRequest) -> StorageUnderTest:
    """Each backend in turn: a test (or module-scoped service) that asks for this runs on
    both. SeaweedFS is started only for the S3 half."""
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return StorageUnderTest(request.param, server)


@pytest.fixture(scope="session")
def node_project() -> NodeProject:
    """tests/node, installed: the venv's node, npm and npx and the pinned packages."""
    return installed_node_project()


@pytest.fixture(scope="session")
async def app_engine(test_database: DatabaseUnderTest) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(test_database.app_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(app_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """The application role's connection, inside a transaction rolled back after the test."""
    async with app_engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    session = AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield session
    await session.close()


@pytest.fixture
def settings(test_database: DatabaseUnderTest, tmp_path: Path) -> Settings:
    return test_database.settings(workspaces_dir=tmp_path / "workspaces")


@pytest.fixture
def fake_clerk() -> clerk.FakeClerk:
    return clerk.FakeClerk()


@asynccontextmanager
async def running_app(
    settings: Settings, session: AsyncSession, http_transport: httpx.AsyncBaseTransport | None
) -> AsyncIterator[FastAPI]:
    """The app with its lifespan, its requests on the test's transaction."""
    app = create_app(settings, http_transport=http_transport)

    async with LifespanManager(app):
        app.state.database = OnTestTransaction(session)
        yield app


class OnTestTransaction(Database):
    """A request's session is the test's session: its commit releases a savepoint, and it
    stays open for the test to look at the rows. A request's driver connection is the one
    under it, already in the test's transaction: its unit of work takes a savepoint too."""

    def __init__(self, session: AsyncSession) -> None:
        self._test_session = session

    def open_session(self) -> AbstractAsyncContextManager[AsyncSession]:
        return nullcontext(self._test_session)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield await driver_connection(self._test_session)


@pytest.fixture
async def app(
    settings: Settings, session: AsyncSession, fake_clerk: clerk.FakeClerk
) -> AsyncIterator[FastAPI]:
    async with running_app(settings, session, fake_clerk.transport) as app:
        yield app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client
