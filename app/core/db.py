"""Engine, the one-session-per-request dependency, and the tenant context for row-level security.

The application connects as a role that is neither superuser nor table owner, so PostgreSQL's
row-level security applies to every query; `set_tenant` tells the policies which organization
(and user) the current transaction acts for. Nothing is set by default, so a query that runs
before the tenant is known sees no tenant rows at all.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.settings import Settings


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        connect_args={
            "server_settings": {
                "application_name": "ajc",
                "statement_timeout": str(settings.database_statement_timeout_ms),
            },
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


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction.

    For the queries every request makes (the tenant, the caller): SQLAlchemy's statement
    machinery costs several times the round trip itself (bench/bench_auth.py, profiled).
    The adapter begins its transaction lazily on its first statement; it is begun here, so a
    query on the driver connection can never run outside the request's transaction.
    """
    connection = await session.connection()
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    if adapted._transaction is None:
        await adapted._start_transaction()
    driver: asyncpg.Connection = adapted.driver_connection
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


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction has committed, never if it rolls back:
    for effects outside the database (removing files) that must follow the rows they belong
    to, not precede them."""
    session.info.setdefault("after_commit", []).append(action)


@asynccontextmanager
async def unit_of_work(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit if the block succeeds, roll back if anything escapes it; then the
    `after_commit` actions, on success only."""
    try:
        yield session
    except BaseException:
        session.info.pop("after_commit", None)
        await session.rollback()
        raise
    else:
        await session.commit()
        for action in session.info.pop("after_commit", []):
            action()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session, one transaction per request; the only place that commits.

    Declared with scope="function" (see `SessionDep`) so the commit happens before the
    response is sent: a client never sees a 2xx for something that did not commit.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session, unit_of_work(session):
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
