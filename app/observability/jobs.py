"""How long each job ran: a procrastinate worker middleware, on every worker of the queue."""

import asyncio
import time
from typing import Any

from app.observability import metrics


async def measure_job(call_next: Any, context: Any, worker: Any) -> Any:
    started = time.perf_counter()
    outcome = "failed"
    try:
        result = await call_next()
        outcome = "succeeded"
        return result
    except asyncio.CancelledError:
        outcome = "cancelled"  # the worker is stopping; the job will run again
        raise
    finally:
        seconds = time.perf_counter() - started
        metrics.JOB_DURATION.labels(context.job.task_name, outcome).observe(seconds)
