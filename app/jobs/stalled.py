"""Jobs of dead workers run again.

A worker killed without its graceful shutdown (SIGKILL, the OOM killer, a lost machine, an
in-process worker left behind at shutdown) leaves its running jobs `doing` for ever:
procrastinate does not retry them by itself. Each worker keeps a heartbeat; a periodic job,
run by whichever worker is alive, retries the `doing` jobs of workers whose heartbeat is
older than WORKER_STALLED_SECONDS (procrastinate's "retry stalled jobs" recipe). A job may
thus run twice, which every job is written to survive.
"""

import logging
import math

import procrastinate
from procrastinate.app import WorkerOptions
from procrastinate.exceptions import ConnectorException

logger = logging.getLogger(__name__)

NAMESPACE = "jobs"
# A worker beats this many times within the stalled timeout, so a slow beat or two is not
# taken for death; the check runs as often as a worker beats.
BEATS_PER_TIMEOUT = 3


def heartbeat_seconds(stalled_seconds: float) -> float:
    return stalled_seconds / BEATS_PER_TIMEOUT


def worker_options(stalled_seconds: float) -> WorkerOptions:
    """The heartbeat that the stalled-job check reads, for every worker of the queue."""
    return {
        "update_heartbeat_interval": heartbeat_seconds(stalled_seconds),
        # A starting worker forgets the dead ones older than this; their jobs (with no worker
        # any more) are still found by the check.
        "stalled_worker_timeout": stalled_seconds,
    }


def blueprint(stalled_seconds: float) -> procrastinate.Blueprint:
    jobs = procrastinate.Blueprint()
    every = max(1, min(59, math.ceil(heartbeat_seconds(stalled_seconds))))

    # The sixth cron field is seconds. The queueing lock keeps one check waiting at most.
    @jobs.periodic(cron=f"* * * * * */{every}", periodic_id="stalled")
    @jobs.task(name="retry_stalled_jobs", pass_context=True, queueing_lock="retry_stalled_jobs")
    async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> int:
        manager = context.app.job_manager
        retried = 0
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_seconds):
            try:
                await manager.retry_job(job)
            except ConnectorException:
                # Another worker's check retried it a moment ago: it is no longer `doing`.
                continue
            retried += 1
            logger.warning(
                "retrying a job of a dead worker",
                extra={"job_id": job.id, "task": job.task_name, "worker_id": job.worker_id},
            )
        return retried

    return jobs
