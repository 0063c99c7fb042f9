"""Jobs queued by a request or a job in its own transaction (see `defer_in_transaction`)."""

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def defer_in_transaction(
    session: AsyncSession, task_name: str, args: dict[str, Any], lock: str | None = None
) -> None:
    """Queue a job in the session's transaction: it exists if and only if the rows it is
    about commit (a transactional outbox, on procrastinate's own table). `app.configure_task(
    ...).defer_async` would use procrastinate's own connection, so the job could start before
    its rows commit, or survive a rollback. `lock`: jobs sharing it never run at once."""
    await session.execute(
        text(
            "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('default', :task_name, 0, :lock, "
            "NULL, CAST(:args AS jsonb), NULL)::procrastinate_job_to_defer_v1])"
        ),
        {"task_name": task_name, "lock": lock, "args": json.dumps(args)},
    )
