"""Budgets' statements. The windows and reservations are written on a driver connection in
the transaction of the work that reserves or settles (the run's request, a round's own, an
answer's save); budgets themselves are managed through the session."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.budgets.models import Budget, BudgetWindow
from app.core.repository import add_unless_duplicate

_APPLICABLE = """
SELECT id, user_id, metric, limit_amount, thresholds
FROM budgets
WHERE organization_id = $1 AND (user_id IS NULL OR user_id = $2)
ORDER BY id
"""


async def applicable(
    connection: asyncpg.Connection, organization_id: uuid.UUID, user_id: uuid.UUID | None
) -> list[asyncpg.Record]:
    """The organization's budgets and the user's own in it."""
    rows: list[asyncpg.Record] = await connection.fetch(_APPLICABLE, organization_id, user_id)
    return rows


# The window of each budget that holds `$3`, made if there is none: the calendar month of
# `$3` in the time zone `$4`, begun no earlier than the budget's last window ended (so a
# time zone changed mid-month cannot open a second window over the same days, which would
# start again from nothing). Two transactions making the same window: the second waits on
# the unique key, then does nothing.
_OPEN_WINDOWS = """
INSERT INTO budget_windows (organization_id, budget_id, starts_at, ends_at)
SELECT $1, b.id, greatest(month.starts_at, coalesce(last.ends_at, month.starts_at)), month.ends_at
FROM unnest($2::uuid[]) AS b(id)
CROSS JOIN LATERAL (
    SELECT date_trunc('month', $3::timestamptz AT TIME ZONE $4) AT TIME ZONE $4 AS starts_at,
           (date_trunc('month', $3::timestamptz AT TIME ZONE $4) + interval '1 month')
               AT TIME ZONE $4 AS ends_at
) AS month
LEFT JOIN LATERAL (
    SELECT w.ends_at FROM budget_windows AS w
    WHERE w.organization_id = $1 AND w.budget_id = b.id AND w.starts_at <= $3
    ORDER BY w.starts_at DESC
    LIMIT 1
) AS last ON true
WHERE NOT EXISTS (
    SELECT 1 FROM budget_windows AS w
    WHERE w.organization_id = $1 AND w.budget_id = b.id AND w.starts_at <= $3 AND $3 < w.ends_at
)
ON CONFLICT (organization_id, budget_id, starts_at) DO NOTHING
"""

# Always in the order of their ids: two transactions locking windows never wait on each other
# in a cycle.
_LOCK_WINDOWS = """
SELECT id, budget_id, starts_at, ends_at, spent, reserved, notified
FROM budget_windows
WHERE organization_id = $1
  AND ((budget_id = ANY($2::uuid[]) AND starts_at <= $3 AND $3 < ends_at) OR id = ANY($4::uuid[]))
ORDER BY id
FOR UPDATE
"""


async def lock_windows(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    budget_ids: Sequence[uuid.UUID],
    at: datetime,
    time_zone: str,
    also: Sequence[uuid.UUID] = (),
) -> list[asyncpg.Record]:
    """The windows of the budgets that hold `at` (made when first needed), and the windows
    `also` names, locked until the transaction ends."""
    if budget_ids:
        await connection.execute(_OPEN_WINDOWS, organization_id, budget_ids, at, time_zone)
    rows: list[asyncpg.Record] = await connection.fetch(
        _LOCK_WINDOWS, organization_id, budget_ids, at, list(also)
    )
    return rows


# What a set of reservations gives back, per window (the reservations are gone).
_GIVE_BACK = """
, back AS (SELECT window_id, sum(amount) AS amount FROM gone GROUP BY window_id)
UPDATE budget_windows AS w
SET reserved = w.reserved - back.amount, updated_at = now()
FROM back
WHERE w.organization_id = $1 AND w.id = back.window_id
RETURNING w.id, back.amount
"""

_RELEASE_EXPIRED = (
    """
WITH gone AS (
    DELETE FROM budget_reservations
    WHERE organization_id = $1 AND expires_at <= $2 AND ($3::uuid[] IS NULL OR window_id = ANY($3))
    RETURNING window_id, amount
)"""
    + _GIVE_BACK
)


async def release_expired(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    now: datetime,
    window_ids: Sequence[uuid.UUID] | None = None,
) -> dict[uuid.UUID, int]:
    """Give back what expired reservations held (of these windows, or of all): their calls
    crashed or were never made. The windows must be locked (or, for all, are locked here by
    the update). What each window got back."""
    rows = await connection.fetch(
        _RELEASE_EXPIRED, organization_id, now, None if window_ids is None else list(window_ids)
    )
    return {row["id"]: row["amount"] for row in rows}


_RELEASE = (
    """
WITH gone AS (
    DELETE FROM budget_reservations
    WHERE organization_id = $1 AND request_id = ANY($2::text[])
    RETURNING window_id, amount
)"""
    + _GIVE_BACK
)


async def release(
    connection: asyncpg.Connection, organization_id: uuid.UUID, request_ids: Sequence[str]
) -> dict[uuid.UUID, int]:
    """Give back what the calls' reservations held (their windows locked by the caller)."""
    rows = await connection.fetch(_RELEASE, organization_id, list(request_ids))
    return {row["id"]: row["amount"] for row in rows}


async def reserved_windows(
    connection: asyncpg.Connection, organization_id: uuid.UUID, request_ids: Sequence[str]
) -> list[uuid.UUID]:
    rows = await connection.fetch(
        "SELECT DISTINCT window_id FROM budget_reservations "
        "WHERE organization_id = $1 AND request_id = ANY($2::text[])",
        organization_id,
        list(request_ids),
    )
    return [row["window_id"] for row in rows]


async def expired_windows(
    connection: asyncpg.Connection, organization_id: uuid.UUID, now: datetime
) -> list[uuid.UUID]:
    rows = await connection.fetch(
        "SELECT DISTINCT window_id FROM budget_reservations "
        "WHERE organization_id = $1 AND expires_at <= $2",
        organization_id,
        now,
    )
    return [row["window_id"] for row in rows]


_HOLD = """
WITH held AS (
    INSERT INTO budget_reservations (organization_id, window_id, request_id, amount, expires_at)
    SELECT $1, r.window_id, $2, r.amount, $5
    FROM unnest($3::uuid[], $4::bigint[]) AS r(window_id, amount)
    RETURNING window_id, amount
)
UPDATE budget_windows AS w
SET reserved = w.reserved + held.amount, updated_at = now()
FROM held
WHERE w.organization_id = $1 AND w.id = held.window_id
"""


async def hold(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    request_id: str,
    amounts: dict[uuid.UUID, int],
    expires_at: datetime,
) -> None:
    """Reserve each amount in its (locked) window for the call `request_id`."""
    await connection.execute(
        _HOLD, organization_id, request_id, list(amounts), list(amounts.values()), expires_at
    )


_CHARGE = """
UPDATE budget_windows
SET spent = spent + $3, notified = $4::int[], updated_at = now()
WHERE organization_id = $1 AND id = $2
"""


async def charge(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    charges: Sequence[tuple[uuid.UUID, int, list[int]]],
) -> None:
    """(window, amount spent, thresholds notified now) for each (locked) window."""
    await connection.executemany(
        _CHARGE,
        [(organization_id, window_id, amount, notified) for window_id, amount, notified in charges],
    )


# Management, through the session.


async def list_budgets(session: AsyncSession, organization_id: uuid.UUID) -> Sequence[Budget]:
    result = await session.scalars(
        select(Budget)
        .where(Budget.organization_id == organization_id)
        .order_by(Budget.user_id.is_not(None), Budget.created_at, Budget.id)
    )
    return result.all()


async def get_budget(
    session: AsyncSession, organization_id: uuid.UUID, budget_id: uuid.UUID
) -> Budget | None:
    budget: Budget | None = await session.scalar(
        select(Budget).where(Budget.organization_id == organization_id, Budget.id == budget_id)
    )
    return budget


async def insert_budget(session: AsyncSession, budget: Budget) -> bool:
    """False if the organization already has a budget of this metric for this scope."""
    return await add_unless_duplicate(session, budget)


async def current_windows(
    session: AsyncSession, organization_id: uuid.UUID, budget_ids: Sequence[uuid.UUID], at: datetime
) -> dict[uuid.UUID, BudgetWindow]:
    """Each budget's window that holds `at`, if it has been made."""
    result = await session.scalars(
        select(BudgetWindow).where(
            BudgetWindow.organization_id == organization_id,
            BudgetWindow.budget_id.in_(budget_ids),
            BudgetWindow.starts_at <= at,
            BudgetWindow.ends_at > at,
        )
    )
    return {window.budget_id: window for window in result}
