"""The daily retention run (app/conversations/retention.py), in the job worker."""

from datetime import UTC, datetime

import procrastinate

from app.conversations import retention

NAMESPACE = "conversations"


def blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint for each job queue (see app/runs/tasks.py)."""
    jobs = procrastinate.Blueprint()
    task = jobs.task(name="purge_inactive", pass_context=True)(purge_inactive)
    jobs.periodic(cron="30 3 * * *")(task)  # daily, at a quiet hour (UTC)
    return jobs


async def purge_inactive(context: procrastinate.JobContext, timestamp: int) -> dict[str, object]:
    extra = context.additional_context
    settings = extra["settings"]
    report = await retention.purge_inactive(
        extra["sessionmaker"],
        extra["storage"],
        datetime.fromtimestamp(timestamp, UTC),
        settings.retention_days,
    )
    return report.__dict__
