from dataclasses import dataclass
from datetime import timedelta

import asyncpg

# One statement, so one round trip and one atomic decision for all the keys of a request
# (the user's and the organization's): either every key takes the request or none does. A
# user refused by their own limit must not spend their organization's, or one runaway
# client would lock out all their colleagues.
#
# `held` locks the keys' rows (in key order, so two requests sharing keys cannot deadlock)
# and, under READ COMMITTED, reads their latest committed times even after waiting for a
# concurrent request's. The decision is made on those, then the INSERT writes every key or,
# if any is early, none. A key seen for the very first time by two requests at the same
# instant has no row to lock yet: both may count from "now", one request too many, once.
# `clock_timestamp()`, not `now()`: the statement may run inside a longer transaction.
_TAKE = """
WITH clock AS (SELECT clock_timestamp() AS now),
wanted (key, emission_interval, period) AS (
    SELECT * FROM unnest($1::text[], $2::interval[], $3::interval[])
),
held AS (
    SELECT key, theoretical_arrival_at FROM rate_limits
    WHERE key = ANY($1::text[])
    ORDER BY key
    FOR UPDATE
),
arrival AS (
    SELECT wanted.key,
        greatest(held.theoretical_arrival_at, clock.now) + wanted.emission_interval AS due_at,
        greatest(held.theoretical_arrival_at, clock.now) + wanted.emission_interval
            - clock.now - wanted.period AS early_by
    FROM wanted CROSS JOIN clock LEFT JOIN held USING (key)
),
latest AS (
    SELECT key, early_by FROM arrival ORDER BY early_by DESC LIMIT 1
),
taken AS (
    INSERT INTO rate_limits AS limits (key, theoretical_arrival_at)
    SELECT key, due_at FROM arrival
    WHERE (SELECT early_by FROM latest) <= interval '0'
    ORDER BY key
    ON CONFLICT (key) DO UPDATE SET theoretical_arrival_at = excluded.theoretical_arrival_at
)
SELECT key, extract(epoch FROM early_by)::float8 AS early_by_seconds FROM latest
"""


@dataclass(frozen=True)
class Allowance:
    """`count` requests at once, then one every `period / count`."""

    key: str
    count: int
    period: timedelta

    @property
    def emission_interval(self) -> timedelta:
        return self.period / self.count


@dataclass(frozen=True)
class Refusal:
    key: str
    retry_after_seconds: float


async def take(connection: asyncpg.Connection, allowances: list[Allowance]) -> Refusal | None:
    """Count one request against every allowance, or against none and say which refused and
    for how long."""
    row = await connection.fetchrow(
        _TAKE,
        [allowance.key for allowance in allowances],
        [allowance.emission_interval for allowance in allowances],
        [allowance.period for allowance in allowances],
    )
    assert row is not None
    if row["early_by_seconds"] <= 0:
        return None
    return Refusal(row["key"], row["early_by_seconds"])
