"""The job queue end to end: a job deferred as the application role is picked up and run by a
worker, on a database of the test's own (jobs commit, so they cannot share the rolled-back
test transaction)."""

from collections.abc import Iterator

import pytest

from app.core import migrations
from app.jobs.queue import create_job_queue, to_libpq_url
from tests.conftest import DatabaseUnderTest


@pytest.fixture
def jobs_database(test_database: DatabaseUnderTest) -> Iterator[str]:
    with test_database.scratch_database("jobs") as roles:
        migrations.upgrade(test_database.url(roles.owner, roles.database), roles.app)
        yield test_database.url(roles.app, roles.database)


async def test_a_deferred_job_runs_in_a_worker_as_the_application_role(
    jobs_database: str,
) -> None:
    queue = create_job_queue(jobs_database)
    seen: list[str] = []

    @queue.task(name="record")
    async def record(item: str) -> None:
        seen.append(item)

    async with queue.open_async():
        job_id = await record.defer_async(item="hello")
        await queue.run_worker_async(wait=False, install_signal_handlers=False)
        jobs = await queue.job_manager.list_jobs_async(id=job_id)

    assert seen == ["hello"]
    assert [job.status for job in jobs] == ["succeeded"]


def test_libpq_url_keeps_the_socket_and_translates_ssl() -> None:
    assert (
        to_libpq_url("postgresql+asyncpg://app@/ajc?host=/tmp/pg")
        == "postgresql://app@/ajc?host=/tmp/pg"
    )
    assert (
        to_libpq_url("postgresql+asyncpg://app:pw@db.example:5432/ajc?ssl=require")
        == "postgresql://app:pw@db.example:5432/ajc?sslmode=require"
    )
