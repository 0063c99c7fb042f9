"""Ingestion jobs, run by the job worker. Retried (with a growing wait) when the attempt
fails for a reason that may pass, such as the embedding provider being down; content that
cannot be read fails the source at once (app/knowledge/service.py)."""

import uuid

import procrastinate

from app.files.service import INGEST_FILE_JOB
from app.knowledge import service

NAMESPACE = "knowledge"
RETRY = procrastinate.RetryStrategy(max_attempts=4, exponential_wait=5)

assert f"{NAMESPACE}:ingest_file" == INGEST_FILE_JOB
assert f"{NAMESPACE}:ingest_source" == service.INGEST_SOURCE


def blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint for each job queue (see app/runs/tasks.py)."""
    jobs = procrastinate.Blueprint()
    jobs.task(name="ingest_source", pass_context=True, retry=RETRY)(ingest_source)
    jobs.task(name="ingest_file", pass_context=True, retry=RETRY)(ingest_file)
    return jobs


async def ingest_source(
    context: procrastinate.JobContext, organization_id: str, source_id: str
) -> int | None:
    extra = context.additional_context
    return await service.ingest_source(
        extra["sessionmaker"],
        extra["embedders"],
        extra["settings"],
        extra["storage"],
        uuid.UUID(organization_id),
        uuid.UUID(source_id),
    )


async def ingest_file(
    context: procrastinate.JobContext, organization_id: str, file_id: str
) -> int | None:
    extra = context.additional_context
    return await service.ingest_file(
        extra["sessionmaker"],
        extra["embedders"],
        extra["storage"],
        uuid.UUID(organization_id),
        uuid.UUID(file_id),
    )
