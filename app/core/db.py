"""Engine and pools, the request's unit of work (an ORM session, or a driver connection for
the hot reads), and the tenant context for row-level security.

The application connects as a role that is neither superuser nor table owner, so PostgreSQL's
row-level security applies to every query; `set_tenant` tells the policies which organization
(and user) the current transaction acts for. Nothing is set by default, so a query that runs
before the tenant is known sees no tenant rows at all.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

import anyio
import asyncpg
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.errors import DatabaseBusy
from app.core.raises import raises
from app.core.request_checks import refuse_nul_characters
from app.core.settings import Settings


def _server_settings(settings: Settings) -> dict[str, str]:
    return {
        "application_name": "ajc",
        "statement_timeout": str(settings.database_statement_timeout_ms),
    }


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        connect_args={
            "server_settings": _server_settings(settings),
            "timeout": settings.database_pool_timeout_seconds,
        },
    )
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed_connection)
    return engine


def _discard_closed_connection(
    dbapi_connection: Any, connection_record: Any, connection_proxy: Any
) -> None:
    """A database that restarted under us leaves dead connections in the pool: replace them
    at checkout, so only the requests in flight during the restart fail.

    Not `pool_pre_ping`: its `SELECT 1` costs a round trip on every checkout, most of an
    authenticated request's time (bench/bench_auth.py). A restarting server closes its
    sockets, asyncpg sees the close while the connection idles, and `is_closed()` answers
    without the network; the pool retries the checkout with a new connection.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def create_driver_pool(url: str, settings: Settings) -> asyncpg.Pool:
    """asyncpg's own pool, for requests that read on the driver (`RequestUnitOfWork`).

    Connections open on demand (none at start), up to the engine's pool size (without its
    overflow: more did not serve `GET /me` faster at 64 clients, bench/bench_auth.py).
    Giving one back costs no round trip: asyncpg always rolls back a transaction left open,
    and the request path leaves no other session state (its settings are transaction-local;
    it never LISTENs or takes advisory locks), so its default reset (`RESET ALL`, `UNLISTEN
    *`, ...: one more round trip per request) has nothing to do.
    """

    async def keep_session(connection: asyncpg.Connection) -> None:
        pass

    return await asyncpg.create_pool(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
        min_size=0,
        max_size=settings.database_pool_size,
        timeout=settings.database_pool_timeout_seconds,
        server_settings=_server_settings(settings),
        reset=keep_session,
    )


class Database:
    """Where a request's unit of work takes its transaction from: an ORM session (SQLAlchemy's
    pool) or a driver connection (asyncpg's pool); and where a run saves its answer
    (`transaction`). The tests give one whose both forms are the test's own transaction."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        pool: asyncpg.Pool,
        acquire_timeout_seconds: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._pool = pool
        self._acquire_timeout_seconds = acquire_timeout_seconds

    def open_session(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self._sessionmaker()

    def acquire(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        acquiring: AbstractAsyncContextManager[asyncpg.Connection] = self._pool.acquire(
            timeout=self._acquire_timeout_seconds
        )
        return acquiring

    def acquire_outside_request(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A driver connection for statements that must not join the request's transaction
        (`app.limits`: a row lock held until the request commits would queue the requests
        that share it). asyncpg's connections are in autocommit between transactions: each
        statement is its own. The tests' `Database` gives its one connection here too,
        inside the test's transaction: nothing counted outlives the test."""
        return self.acquire()

    @asynccontextmanager
    async def transaction(self, tenant: "Tenant") -> AsyncIterator[asyncpg.Connection]:
        """A transaction of its own on a driver connection, scoped to the tenant as it begins
        (`driver_transaction`), outside any request: for work a run does after its request
        has committed (saving its answer), where an ORM session's own checkout, BEGIN,
        COMMIT and close were most of a save's CPU (bench/bench_ttft.py, profiled)."""
        async with self.acquire() as connection, driver_transaction(connection, tenant) as tx:
            yield tx


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction.

    For the queries every request makes (the tenant, the caller): SQLAlchemy's statement
    machinery costs several times the round trip itself (bench/bench_auth.py, profiled).
    The adapter begins its transaction lazily on its first statement; it is begun here, so a
    query on the driver connection can never run outside the request's transaction.
    """
    transaction = session.sync_session.get_transaction()
    cached = session.info.get("driver_connection")
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]
    connection = await session.connection()
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    if adapted._transaction is None:
        await adapted._start_transaction()
    driver: asyncpg.Connection = adapted.driver_connection
    session.info["driver_connection"] = (session.sync_session.get_transaction(), driver)
    return driver


async def set_tenant(
    session: AsyncSession, organization_id: uuid.UUID | None, user_id: uuid.UUID | None = None
) -> None:
    """Scope the session's current transaction to one organization (and user).

    `set_config(..., true)` is transaction-local: it cannot leak to the next request that
    reuses the pooled connection.
    """
    connection = await driver_connection(session)
    await connection.execute(
        "SELECT set_config('app.org_id', $1, true), set_config('app.user_id', $2, true)",
        str(organization_id) if organization_id else "",
        str(user_id) if user_id else "",
    )


Tenant = tuple[uuid.UUID | None, uuid.UUID | None]
"""(organization id, user id); None for either means none."""

NO_TENANT: Tenant = (None, None)


def _tenant_statement(tenant: Tenant) -> str:
    """`set_tenant`'s statement with its values written in, for the simple-query protocol
    (which takes no parameters) to send it together with BEGIN. The values are UUIDs, checked
    here: no text from a request reaches the SQL."""

    def literal(value: uuid.UUID | None) -> str:
        if value is None:
            return "''"
        if not isinstance(value, uuid.UUID):
            raise TypeError(f"a tenant is a UUID, not {type(value).__name__}")
        return f"'{value}'"

    organization_id, user_id = tenant
    return (
        f"SELECT set_config('app.org_id', {literal(organization_id)}, true), "
        f"set_config('app.user_id', {literal(user_id)}, true)"
    )


@asynccontextmanager
async def driver_transaction(
    connection: asyncpg.Connection, tenant: Tenant
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on a driver connection, begun and scoped to the tenant in one round
    trip; committed if the block succeeds, rolled back if anything escapes it. On a
    connection already in a transaction (the tests'), a savepoint."""
    if connection.is_in_transaction():
        begin = "SAVEPOINT request"
        commit, rollback = "RELEASE SAVEPOINT request", "ROLLBACK TO SAVEPOINT request"
    else:
        begin, commit, rollback = "BEGIN", "COMMIT", "ROLLBACK"
    await connection.execute(f"{begin}; {_tenant_statement(tenant)}")
    try:
        yield connection
    except BaseException:
        await connection.execute(rollback)
        raise
    await connection.execute(commit)


# An action may be a coroutine function: moving bytes on an object store is a request.
Action = Callable[[], Awaitable[None] | None]


def after_commit(session: AsyncSession, action: Action) -> None:
    """Run `action` once the session's transaction has committed, never if it rolls back:
    for effects outside the database (removing files) that must follow the rows they belong
    to, not precede them."""
    session.info.setdefault("after_commit", []).append(action)


def after_rollback(session: AsyncSession, action: Action) -> None:
    """Run `action` if the session's transaction rolls back (or its commit fails), never if
    it commits: to give back what was reserved for work that will not happen."""
    session.info.setdefault("after_rollback", []).append(action)


@asynccontextmanager
async def unit_of_work(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit if the block succeeds, roll back if anything escapes it or the commit fails;
    then the `after_commit` or the `after_rollback` actions."""
    try:
        yield session
        await session.commit()
    except BaseException:
        session.info.pop("after_commit", None)
        try:
            await session.rollback()
        finally:
            for action in session.info.pop("after_rollback", []):
                await _run(action)
        raise
    session.info.pop("after_rollback", None)
    for action in session.info.pop("after_commit", []):
        await _run(action)


async def _run(action: Action) -> None:
    result = action()
    if result is not None:
        await result


class RequestUnitOfWork:
    """The request's one transaction, opened on first use (a request that never touches the
    database, `/healthz`, costs nothing here), in one of two forms:

    - an ORM session (`SessionDep`), for everything that writes or loads models;
    - a driver connection (`CallerConnectionDep`), for the hot reads: the connection comes
      from asyncpg's pool and its BEGIN carries the tenant, so `GET /me` is three round trips
      and none of SQLAlchemy's session and pool machinery, which cost several times the
      round trips themselves (bench/bench_auth.py, profiled).

    A request that has its session gets the driver connection under it (same transaction);
    one that began on a driver connection cannot open a session afterwards (that would be a
    second transaction): a route that needs both asks for the session first.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._stack = AsyncExitStack()
        self._session: AsyncSession | None = None
        self._connection: asyncpg.Connection | None = None
        self._tenant = NO_TENANT

    async def scope(self, organization_id: uuid.UUID | None, user_id: uuid.UUID) -> None:
        """Act for this organization and user (row-level security) from here on: now if the
        transaction is open, else as it begins."""
        self._tenant = (organization_id, user_id)
        if self._session is not None:
            await set_tenant(self._session, organization_id, user_id)
        elif self._connection is not None:
            await self._connection.execute(_tenant_statement(self._tenant))

    async def session(self) -> AsyncSession:
        if self._session is None:
            if self._connection is not None:
                raise RuntimeError(
                    "this request's transaction is on a driver connection: "
                    "take the session before the connection"
                )
            session = await self._stack.enter_async_context(self._database.open_session())
            self._session = await self._stack.enter_async_context(unit_of_work(session))
            if self._tenant != NO_TENANT:
                await set_tenant(self._session, *self._tenant)
        return self._session

    async def connection(self) -> asyncpg.Connection:
        if self._session is not None:
            return await driver_connection(self._session)
        if self._connection is None:
            connection = await self._stack.enter_async_context(self._database.acquire())
            self._connection = await self._stack.enter_async_context(
                driver_transaction(connection, self._tenant)
            )
        return self._connection

    async def __aenter__(self) -> "RequestUnitOfWork":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if exc_info[0] is None:
            await self._stack.aclose()
            return
        # The rollback must finish even when the request is being cancelled, or the
        # connection would go back to the pool mid-transaction.
        with anyio.CancelScope(shield=True):
            await self._stack.__aexit__(*exc_info)


class TransactionalRoute(APIRoute):
    """Every route's class: the checks every request meets whatever its schema
    (`app.core.request_checks`), then its unit of work. The session `SessionDep` gives is
    committed once the route has returned and its response is built, and before the response
    is sent (a client never sees a 2xx for something that did not commit); anything raised
    rolls it back.

    A route class rather than a yield dependency (STYLE.md's `scope="function"`): FastAPI's
    machinery for yield dependencies (an exit stack, a shielded cancel scope and two context
    managers per dependency) cost more than the database work of an authenticated `GET /me`
    (bench/bench_auth.py, profiled in-process); the semantics are the same.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            await refuse_nul_characters(request)
            async with RequestUnitOfWork(request.app.state.database) as work:
                request.scope[_UNIT_OF_WORK] = work
                return await handler(request)

        return handle


_UNIT_OF_WORK = "app.unit_of_work"


def request_unit_of_work(request: Request) -> RequestUnitOfWork:
    """For dependencies: not one itself, which would cost FastAPI's dependency machinery on
    every authenticated request for an attribute lookup."""
    work: RequestUnitOfWork | None = request.scope.get(_UNIT_OF_WORK)
    if work is None:
        raise RuntimeError(f"{request.url.path}: its router needs route_class=TransactionalRoute")
    return work


@raises(DatabaseBusy)  # the pool's timeout, which app.core.errors answers as this
async def get_session(request: Request) -> AsyncSession:
    """The request's session (one per request; `TransactionalRoute` is the only place that
    commits it). `async` like every dependency here: FastAPI runs a plain `def` in its thread
    pool, a thread hand-off per request (a tenth of `GET /me`'s time, profiled)."""
    return await request_unit_of_work(request).session()


SessionDep = Annotated[AsyncSession, Depends(get_session)]
