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

# The budgets that apply to a user's call, with the organization's time zone (the
# calendar of their windows): one row with no budget when none applies.
_APPLICABLE = """
SELECT b.id, b.user_id, b.metric, b.limit_amount, b.thresholds, o.time_zone
FROM organizations AS o
LEFT JOIN budgets AS b
  ON b.organization_id = o.id AND (b.user_id IS NULL OR b.user_id = $2)
WHERE o.id = $1
ORDER BY b.id
"""


async def applicable(
    connection: asyncpg.Connection, organization_id: uuid.UUID, user_id: uuid.UUID | None
) -> tuple[list[asyncpg.Record], str]:
    """The organization's budgets and the user's own in it; the organization's time zone."""
    rows = await connection.fetch(_APPLICABLE, organization_id, user_id)
    time_zone = rows[0]["time_zone"] if rows else "UTC"
    return [row for row in rows if row["id"] is not None], time_zone


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

# The windows of the budgets `$2` that hold `$3`, those the calls `$4` reserved in, and the
# windows `$5`: always locked in the order of their ids, so two transactions locking windows
# never wait on each other in a cycle. `has_expired`: the window holds a reservation past
# its expiry (read from the statement's snapshot, which may predate a release made while
# this one waited for the lock: at worst an expired one is missed, which leaves less room,
# never more). `reserved_here`: one of the calls `$4` reserved in it.
_LOCK_WINDOWS = """
SELECT w.id, w.budget_id, w.starts_at, w.ends_at, w.spent, w.reserved, w.notified,
       EXISTS (
           SELECT 1 FROM budget_reservations AS r
           WHERE r.organization_id = $1 AND r.window_id = w.id AND r.expires_at <= $3
       ) AS has_expired,
       EXISTS (
           SELECT 1 FROM budget_reservations AS r
           WHERE r.organization_id = $1 AND r.window_id = w.id AND r.request_id = ANY($4::text[])
       ) AS reserved_here
FROM budget_windows AS w
WHERE w.organization_id = $1
  AND ((w.budget_id = ANY($2::uuid[]) AND w.starts_at <= $3 AND $3 < w.ends_at)
       OR w.id = ANY($5::uuid[])
       OR w.id IN (
           SELECT r.window_id FROM budget_reservations AS r
           WHERE r.organization_id = $1 AND r.request_id = ANY($4::text[])
       ))
ORDER BY w.id
FOR UPDATE OF w
"""


async def lock_windows(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    budget_ids: Sequence[uuid.UUID],
    at: datetime,
    time_zone: str,
    request_ids: Sequence[str] = (),
    window_ids: Sequence[uuid.UUID] = (),
) -> list[asyncpg.Record]:
    """The windows of the budgets that hold `at` (made when first needed), those the calls
    `request_ids` reserved in and the windows `window_ids`, locked until the transaction
    ends."""
    arguments = (organization_id, budget_ids, at, list(request_ids), list(window_ids))
    windows: list[asyncpg.Record] = await connection.fetch(_LOCK_WINDOWS, *arguments)
    found = {w["budget_id"] for w in windows if w["starts_at"] <= at < w["ends_at"]}
    missing = [budget_id for budget_id in budget_ids if budget_id not in found]
    if missing:
        await connection.execute(_OPEN_WINDOWS, organization_id, missing, at, time_zone)
        windows = await connection.fetch(_LOCK_WINDOWS, *arguments)
    return windows


_RELEASE_EXPIRED = """
WITH gone AS (
    DELETE FROM budget_reservations
    WHERE organization_id = $1 AND expires_at <= $2 AND window_id = ANY($3::uuid[])
    RETURNING window_id, amount
), back AS (SELECT window_id, sum(amount) AS amount FROM gone GROUP BY window_id)
UPDATE budget_windows AS w
SET reserved = w.reserved - back.amount, updated_at = now()
FROM back
WHERE w.organization_id = $1 AND w.id = back.window_id
RETURNING w.id, back.amount
"""


async def release_expired(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    now: datetime,
    window_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, int]:
    """Give back what the expired reservations of these (locked) windows held: their calls
    crashed or were never made. What each window got back."""
    rows = await connection.fetch(_RELEASE_EXPIRED, organization_id, now, list(window_ids))
    return {row["id"]: row["amount"] for row in rows}


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


# One statement: the calls' reservations deleted and given back, and each charged window's
# spend raised (its thresholds now notified with it, `{80,90}` as text).
_SETTLE = """
WITH gone AS (
    DELETE FROM budget_reservations
    WHERE organization_id = $1 AND request_id = ANY($2::text[])
    RETURNING window_id, amount
), back AS (SELECT window_id, sum(amount) AS amount FROM gone GROUP BY window_id),
charged AS (
    SELECT * FROM unnest($3::uuid[], $4::bigint[], $5::text[]) AS c(window_id, amount, notified)
)
UPDATE budget_windows AS w
SET spent = w.spent + coalesce(charged.amount, 0),
    reserved = w.reserved - coalesce(back.amount, 0),
    notified = coalesce(charged.notified::int[], w.notified),
    updated_at = now()
FROM back FULL JOIN charged ON charged.window_id = back.window_id
WHERE w.organization_id = $1 AND w.id = coalesce(back.window_id, charged.window_id)
"""


async def settle(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    request_ids: Sequence[str],
    charges: Sequence[tuple[uuid.UUID, int, list[int]]],
) -> None:
    """Give back what the calls `request_ids` reserved, and charge each (locked) window
    (window, amount spent, thresholds notified now)."""
    await connection.execute(
        _SETTLE,
        organization_id,
        list(request_ids),
        [window_id for window_id, _, _ in charges],
        [amount for _, amount, _ in charges],
        ["{" + ",".join(map(str, notified)) + "}" for _, _, notified in charges],
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
