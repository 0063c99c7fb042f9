"""Cancelling a run that another API process streams (`ajc serve --workers N`).

`POST /runs/{run_id}/cancel` lands on any process. The one streaming the run cancels it
directly; any other checks in the database that the caller has the run in progress and
sends `NOTIFY run_cancel, '<organization id>:<user id>:<run id>'` in the request's
transaction (so it leaves only if the request commits): run ids are the clients', and
another organization's run of the same id is not this one. Every process listens on that
channel on a connection of its own, and the one that has the run cancels it. While a
process reconnects its listener (after a database restart) a notice can be missed: the run
then ends at RUN_MAX_SECONDS.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

if TYPE_CHECKING:
    from app.runs.executor import RunKey, RunRegistry

logger = logging.getLogger(__name__)

CHANNEL = "run_cancel"
RECONNECT_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 10.0


async def notify(session: AsyncSession, key: "RunKey") -> None:
    organization_id, user_id, run_id = key
    payload = f"{organization_id}:{user_id}:{run_id}"
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
    )


def _key(payload: str) -> "RunKey | None":
    organization_id, _, rest = payload.partition(":")
    user_id, _, run_id = rest.partition(":")
    try:
        return (uuid.UUID(organization_id), uuid.UUID(user_id), run_id)
    except ValueError:
        return None


@contextlib.asynccontextmanager
async def listening(engine: AsyncEngine, registry: "RunRegistry") -> AsyncIterator[None]:
    """Cancel this process's runs named on the channel, for the duration of the block."""
    task = asyncio.create_task(_listen_forever(engine, registry), name="run-cancel listener")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _listen_forever(engine: AsyncEngine, registry: "RunRegistry") -> None:
    while True:
        try:
            await _listen(engine, registry)
        except Exception:  # a supervisor: whatever happened, listen again
            logger.warning("run-cancel listener lost its connection; reconnecting", exc_info=True)
        await asyncio.sleep(RECONNECT_SECONDS)


async def _listen(engine: AsyncEngine, registry: "RunRegistry") -> None:
    def on_notice(connection: Any, pid: int, channel: str, payload: str) -> None:
        if (key := _key(payload)) is not None:
            registry.cancel_here(key)

    # A connection of its own, outside the pool: held for good, and never handed to a request.
    args, options = engine.dialect.create_connect_args(engine.url)
    connection = await asyncpg.connect(*args, **options, timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        closed = asyncio.Event()
        connection.add_termination_listener(lambda _: closed.set())
        await connection.add_listener(CHANNEL, on_notice)
        await closed.wait()
    finally:
        connection.terminate()
