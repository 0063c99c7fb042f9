"""Every job a worker runs is timed by task and outcome, on a database of the test's own
(jobs commit)."""

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from app.core import migrations
from app.jobs.queue import create_job_queue
from tests.conftest import DatabaseUnderTest


@pytest.fixture
def jobs_database(test_database: DatabaseUnderTest) -> Iterator[str]:
    with test_database.scratch_database("job_metrics") as roles:
        migrations.upgrade(test_database.url(roles.owner, roles.database), roles.app)
        yield test_database.url(roles.app, roles.database)


def runs(task: str, outcome: str) -> float:
    labels = {"task": task, "outcome": outcome}
    return REGISTRY.get_sample_value("ajc_job_duration_seconds_count", labels) or 0.0


async def test_each_job_is_timed_by_task_and_outcome(jobs_database: str) -> None:
    queue = create_job_queue(jobs_database)

    @queue.task(name="metrics_ok")
    async def succeeds() -> None:
        pass

    @queue.task(name="metrics_broken")
    async def fails() -> None:
        raise RuntimeError("on purpose")

    before = (runs("metrics_ok", "succeeded"), runs("metrics_broken", "failed"))
    async with queue.open_async():
        await succeeds.defer_async()
        await succeeds.defer_async()
        await fails.defer_async()
        await queue.run_worker_async(wait=False, install_signal_handlers=False)

    assert runs("metrics_ok", "succeeded") == before[0] + 2
    assert runs("metrics_broken", "failed") == before[1] + 1
