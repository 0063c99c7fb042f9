"""The usage ledger's queries: events written on a driver connection (inside the transaction
of the work that made the call), reports read through the session."""

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date, timedelta
from typing import Any

import asyncpg
from sqlalchemy import TIMESTAMP, Date, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.usage.models import UsageEvent

# The price in force when each call began (the newest version from before it), paired with
# the model's owner as every query on model_prices is; the cost rounded up to a micro-USD.
# Cached input tokens are part of the input tokens, charged at their own price. One
# statement for a batch of calls of one attribution ($1-$5), the calls' own columns as
# arrays ($6-$17).
_RECORD = """
INSERT INTO usage_events (
    organization_id, occurred_at, request_id, purpose, user_id, agent_id, conversation_id,
    run_id, model_id, model_name, input_tokens, cached_input_tokens, output_tokens,
    tokens_estimated, latency_ms, instructions_template_version_id, task_template_version_id,
    price_id, cost_micro_usd
)
SELECT $1::uuid, c.occurred_at, c.request_id, c.purpose, $2::uuid, $3::uuid, $4::uuid,
       $5::text, c.model_id, c.model_name, c.input_tokens, c.cached_input_tokens,
       c.output_tokens, c.tokens_estimated, c.latency_ms, c.instructions_template_version_id,
       c.task_template_version_id, price.id,
       ceil(((c.input_tokens - c.cached_input_tokens)::numeric * price.input_micro_usd
             + c.cached_input_tokens::numeric * price.cached_input_micro_usd
             + c.output_tokens::numeric * price.output_micro_usd) / 1000000)::bigint
FROM unnest(
    $6::timestamptz[], $7::text[], $8::text[], $9::uuid[], $10::text[], $11::int[], $12::int[],
    $13::int[], $14::bool[], $15::int[], $16::uuid[], $17::uuid[]
) AS c(
    occurred_at, request_id, purpose, model_id, model_name, input_tokens, cached_input_tokens,
    output_tokens, tokens_estimated, latency_ms, instructions_template_version_id,
    task_template_version_id
)
LEFT JOIN LATERAL (
    SELECT p.id, p.input_micro_usd, p.cached_input_micro_usd, p.output_micro_usd
    FROM model_prices AS p
    JOIN models AS m
      ON m.id = p.model_id
     AND m.owner_organization_id IS NOT DISTINCT FROM p.owner_organization_id
    WHERE p.model_id = c.model_id AND p.effective_from <= c.occurred_at
    ORDER BY p.effective_from DESC
    LIMIT 1
) AS price ON true
ON CONFLICT (organization_id, request_id) DO NOTHING
RETURNING occurred_at, cost_micro_usd, input_tokens + output_tokens AS tokens
"""


async def record(
    connection: asyncpg.Connection,
    attribution: Sequence[Any],
    calls: Sequence[Sequence[Any]],
) -> list[asyncpg.Record]:
    """Calls of one attribution (organization, user, agent, conversation, run) as `_RECORD`'s
    columns, each a list over the calls; the events it recorded (one already recorded, by
    its request id, is skipped): when, their cost and their tokens."""
    rows: list[asyncpg.Record] = await connection.fetch(_RECORD, *attribution, *calls)
    return rows


REPORT_WORK_MEM = "64MB"


def _sortable(value: Any) -> tuple[bool, str]:
    """NULLs last, as PostgreSQL orders them ascending."""
    return (value is None, "" if value is None else str(value))


GROUPS = {
    "agent": (UsageEvent.agent_id,),
    "user": (UsageEvent.user_id,),
    "model": (UsageEvent.model_id, UsageEvent.model_name),
    "purpose": (UsageEvent.purpose,),
}


def _in_range(
    organization_id: uuid.UUID,
    time_zone: str,
    start: date,
    end: date,
    user_id: uuid.UUID | None,
) -> list[Any]:
    """The organization's events from `start`'s midnight to the end of `end`, both in its
    time zone (on the B-tree (organization_id, occurred_at))."""
    conditions = [
        UsageEvent.organization_id == organization_id,
        UsageEvent.occurred_at >= func.timezone(time_zone, cast(start, TIMESTAMP)),
        UsageEvent.occurred_at < func.timezone(time_zone, cast(end + timedelta(days=1), TIMESTAMP)),
    ]
    if user_id is not None:
        conditions.append(UsageEvent.user_id == user_id)
    return conditions


def _totals() -> list[Any]:
    return [
        func.count().label("calls"),
        func.coalesce(func.sum(UsageEvent.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(UsageEvent.cached_input_tokens), 0).label("cached_input_tokens"),
        func.coalesce(func.sum(UsageEvent.output_tokens), 0).label("output_tokens"),
        func.count().filter(UsageEvent.tokens_estimated).label("estimated_calls"),
        func.coalesce(func.sum(UsageEvent.cost_micro_usd), 0).label("cost_micro_usd"),
        func.count().filter(UsageEvent.cost_micro_usd.is_(None)).label("unpriced_calls"),
    ]


async def report(
    session: AsyncSession,
    organization_id: uuid.UUID,
    time_zone: str,
    period: str,
    groups: Sequence[str],
    start: date,
    end: date,
    user_id: uuid.UUID | None = None,
) -> list[Any]:
    """Totals per period (its first day, in the organization's time zone; weeks begin on
    Monday) and per group; newest period first."""
    period_start = cast(
        func.date_trunc(period, func.timezone(time_zone, UsageEvent.occurred_at)), Date
    ).label("period_start")
    columns = [column for group in groups for column in GROUPS[group]]
    # A large organization's month is tens of thousands of events: sorted for the grouping
    # in memory rather than spilled to disk (bench/bench_usage.py: an external merge was
    # most of the query). For this transaction only.
    await session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
    query = (
        select(period_start, *columns, *_totals())
        .where(*_in_range(organization_id, time_zone, start, end, user_id))
        .group_by(period_start, *columns)
    )
    # Ordered here, not by the query: unordered, the groups are hashed (a few thousand),
    # where an ORDER BY had the planner sort every event for a grouped scan.
    rows = list((await session.execute(query)).all())
    rows.sort(key=lambda row: tuple(_sortable(value) for value in row[1 : 1 + len(columns)]))
    rows.sort(key=lambda row: row.period_start, reverse=True)
    return rows


EXPORT_COLUMNS = (
    "occurred_at",
    "request_id",
    "purpose",
    "user_id",
    "agent_id",
    "conversation_id",
    "run_id",
    "model_id",
    "model_name",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "tokens_estimated",
    "latency_ms",
    "instructions_template_version_id",
    "task_template_version_id",
    "price_id",
    "cost_micro_usd",
)

_EXPORT = f"""
SELECT {", ".join(EXPORT_COLUMNS)}
FROM usage_events
WHERE organization_id = $1
  AND occurred_at >= ($2::date)::timestamp AT TIME ZONE $4
  AND occurred_at < ($3::date + 1)::timestamp AT TIME ZONE $4
ORDER BY occurred_at, request_id
"""


async def export(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    time_zone: str,
    start: date,
    end: date,
) -> AsyncIterator[asyncpg.Record]:
    """Every event of the range, oldest first, read with a cursor (months of events are
    never all in memory); the connection must be in a transaction."""
    async for row in connection.cursor(
        _EXPORT, organization_id, start, end, time_zone, prefetch=1000
    ):
        yield row
