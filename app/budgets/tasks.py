"""Giving back the reservations of calls that crashed (app/budgets/service.py), in the job
worker, every minute: one transaction per organization, the tenant set for it."""

import procrastinate

from app.budgets import service
from app.core.db import Database
from app.organizations import service as organizations_service

NAMESPACE = "budgets"


def blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint for each job queue (see app/runs/tasks.py)."""
    jobs = procrastinate.Blueprint()
    task = jobs.task(name="release_expired", pass_context=True)(release_expired)
    jobs.periodic(cron="* * * * *")(task)
    return jobs


async def release_expired(context: procrastinate.JobContext, timestamp: int) -> dict[str, int]:
    return await release_all_expired(context.additional_context["database"])


async def release_all_expired(database: Database) -> dict[str, int]:
    """Every organization's expired reservations given back: how many organizations had
    some, and the amount (micro-USD and tokens together) given back."""
    async with database.open_session() as session:
        organization_ids = await organizations_service.list_ids(session)
    organizations = amount = 0
    for organization_id in organization_ids:
        async with database.transaction((organization_id, None)) as connection:
            given_back = await service.release_expired(connection, organization_id)
        organizations += given_back > 0
        amount += given_back
    return {"organizations": organizations, "amount": amount}
