"""Running a worker in `ajc serve`'s event loop (`ajc worker` runs one on its own).

Jobs find what they share with the API in their context (`additional_context`): the
sessionmaker, the settings and the model client (see `job_context`).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import procrastinate

logger = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = (1.0, 30.0)  # first and longest wait before restarting a worker
ABORT_TIMEOUT_SECONDS = 1.0  # after the graceful shutdown's timeout, for the abort


async def supervise_worker(
    queue: procrastinate.App, concurrency: int, context: dict[str, Any]
) -> None:
    """Run a worker until cancelled, restarting it when it dies.

    A worker dies when its database connection does (a restart, a failover); the API beside it
    recovers by itself through the pool's pre-ping, and the jobs must too.
    """
    delay, longest = RESTART_DELAY_SECONDS
    while True:
        started = time.monotonic()
        try:
            await queue.run_worker_async(
                concurrency=concurrency,
                install_signal_handlers=False,
                delete_jobs="successful",
                additional_context=context,
            )
            return
        except Exception:
            if time.monotonic() - started > longest:
                delay = RESTART_DELAY_SECONDS[0]
            logger.exception("job worker stopped on an error; restarting in %.0f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)


@contextlib.asynccontextmanager
async def running_worker(
    queue: procrastinate.App, concurrency: int, shutdown_timeout: float, context: dict[str, Any]
) -> AsyncIterator[None]:
    """A worker beside the API for the duration of the block; on exit it stops taking jobs
    and lets running ones finish (procrastinate's graceful shutdown on cancel), for at most
    `shutdown_timeout` seconds. Then it is cancelled again, which aborts the graceful shutdown:
    a worker whose connection just broke would otherwise wait minutes for the database to
    unregister itself, and outlive the block as a task. One that still does not stop is left
    behind rather than hold up the shutdown: its unfinished jobs are retried after the
    stalled-worker timeout, and every job is safe to run twice."""
    task = asyncio.create_task(
        supervise_worker(queue, concurrency, context), name="procrastinate-worker"
    )
    logger.info("in-process worker started", extra={"concurrency": concurrency})
    try:
        yield
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=shutdown_timeout)
        if not done:
            # Its graceful shutdown is stuck, most likely on a broken connection (unregistering
            # the worker waits for the database): cancel that too.
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=ABORT_TIMEOUT_SECONDS)
        if done:
            logger.info("in-process worker stopped")
        else:
            logger.warning(
                "in-process worker did not stop within %.0f s; leaving it", shutdown_timeout
            )


def job_context(
    sessionmaker: Any,
    database: Any,
    settings: Any,
    model_clients: Any,
    embedders: Any,
    storage: Any,
) -> dict[str, Any]:
    return {
        "sessionmaker": sessionmaker,
        "database": database,
        "settings": settings,
        "model_clients": model_clients,
        "embedders": embedders,
        "storage": storage,
    }
