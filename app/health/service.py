"""Liveness and readiness: what a load balancer or orchestrator asks before sending traffic."""

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.health.schemas import Readiness

READINESS_TIMEOUT_SECONDS = 3.0


async def check_readiness(engine: AsyncEngine, head_revision: str | None) -> Readiness:
    """Ready when the database answers and its schema is at this code's migration head.

    Bounded in time: a database that hangs must make /readyz answer 503, not hang with it.
    """
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            async with engine.connect() as connection:
                revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception as exc:  # any failure to reach the database means "not ready"
        return Readiness(
            ready=False, database="unreachable", detail=f"{type(exc).__name__}: {exc}"[:300]
        )
    if revision != head_revision:
        return Readiness(
            ready=False,
            database="reachable",
            migration=revision,
            expected_migration=head_revision,
            detail="The database schema is not at this release's migration head.",
        )
    return Readiness(
        ready=True, database="reachable", migration=revision, expected_migration=head_revision
    )
