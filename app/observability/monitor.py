"""What a process samples for its metrics twice a second: how late its event loop runs, and
how busy its two database pools are.

A timer that fires late measures every stall of the loop (a blocking call, a long
computation, a garbage collection) whatever caused it, at the cost of one wake-up per sample.
The pools are read rather than counted at each checkout: the request path pays nothing.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from app.observability import metrics

logger = logging.getLogger(__name__)

SAMPLE_EVERY_SECONDS = 0.5


@contextlib.asynccontextmanager
async def monitoring(engine: AsyncEngine, driver_pool: Any) -> AsyncIterator[None]:
    """Sample for the duration of the block."""
    task = asyncio.create_task(_sample(engine, driver_pool), name="metrics-monitor")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sample(engine: AsyncEngine, driver_pool: Any) -> None:
    loop = asyncio.get_running_loop()
    sample_pools = True
    while True:
        due = loop.time() + SAMPLE_EVERY_SECONDS
        await asyncio.sleep(SAMPLE_EVERY_SECONDS)
        metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - due))
        if not sample_pools:
            continue
        try:
            _sample_pools(engine, driver_pool)
        except Exception:
            # A pool's internals changed with a new release: say it once, keep the lag.
            logger.exception("database pools not sampled for metrics")
            sample_pools = False


def _sample_pools(engine: AsyncEngine, driver_pool: Any) -> None:
    orm = engine.sync_engine.pool
    if isinstance(orm, QueuePool):
        metrics.DB_POOL_IN_USE.labels("orm").set(orm.checkedout())
        metrics.DB_POOL_WAITING.labels("orm").set(_waiting(orm._pool, "_queue"))
    in_use = driver_pool.get_size() - driver_pool.get_idle_size()
    metrics.DB_POOL_IN_USE.labels("driver").set(in_use)
    metrics.DB_POOL_WAITING.labels("driver").set(_waiting(driver_pool, "_queue"))


def _waiting(owner: object, queue_attribute: str) -> int:
    """The tasks waiting on an asyncio.Queue (its `_getters`): neither SQLAlchemy's nor
    asyncpg's pool counts the tasks that wait for one of its connections, and both keep the
    idle ones in an asyncio.Queue."""
    queue = getattr(owner, queue_attribute, None)
    return len(getattr(queue, "_getters", ()))
