"""Usage and cost: every model call is one event of the ledger (app/usage/models.py),
recorded by the work that made the call in its own transaction; admins read the
organization's figures, members their own.

Tokens are the provider's count when it sends one; otherwise this service's estimate
(app/llm/context.py), marked `tokens_estimated`. A call the provider refused before
answering anything (an error status, a connection that failed) is not an event: nothing was
consumed, and nothing counted to bill. Cost is computed as the event is written, from the
model's price version in force when the call began (micro-USD, rounded up): a later price
never changes an old event's cost, and a model without a price has no cost rather than a
made-up one (`unpriced_calls`).
"""

import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.identity import OrganizationPrincipal
from app.core.db import Database
from app.core.errors import UnprocessableContent
from app.organizations import service as organizations_service
from app.usage import repository
from app.usage.models import UsagePurpose
from app.usage.schemas import UsageGroup, UsagePeriod, UsageReport, UsageRow, UsageTotals

DEFAULT_DAYS = 30
MAX_DAYS = 731  # two years in one report


@dataclass(frozen=True)
class Attribution:
    """Whom a model call was for, and where: an event's who."""

    organization_id: uuid.UUID
    user_id: uuid.UUID | None
    agent_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class ModelCall:
    """One call of a model, as the ledger records it."""

    request_id: str  # unique in the organization: the same call recorded twice counts once
    purpose: UsagePurpose
    occurred_at: datetime  # when the call began: the price in force then is charged
    model_id: uuid.UUID | None  # the registry's (None: a model outside it)
    model_name: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    estimated: bool
    latency_ms: int | None
    # The prompt template versions (app/prompts/) of the call's instructions and of its
    # quick task's prompt, if any.
    instructions_template_version_id: uuid.UUID | None = None
    task_template_version_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Recorded:
    """An event the ledger took (not one it had already): what budgets are charged."""

    occurred_at: datetime
    cost_micro_usd: int | None  # None: the model has no price in force
    tokens: int  # input and output


async def record(
    connection: asyncpg.Connection, attribution: Attribution, calls: Sequence[ModelCall]
) -> list[Recorded]:
    """Add the calls to the ledger, in the connection's transaction (the work's own)."""
    if not calls:
        return []
    rows = await repository.record(
        connection,
        (
            attribution.organization_id,
            attribution.user_id,
            attribution.agent_id,
            attribution.conversation_id,
            attribution.run_id,
        ),
        [
            [call.occurred_at for call in calls],
            [call.request_id for call in calls],
            [call.purpose.value for call in calls],
            [call.model_id for call in calls],
            [call.model_name for call in calls],
            [call.input_tokens for call in calls],
            [min(call.cached_input_tokens, call.input_tokens) for call in calls],
            [call.output_tokens for call in calls],
            [call.estimated for call in calls],
            [call.latency_ms for call in calls],
            [call.instructions_template_version_id for call in calls],
            [call.task_template_version_id for call in calls],
        ],
    )
    return [Recorded(row["occurred_at"], row["cost_micro_usd"], row["tokens"]) for row in rows]


def _date_range(time_zone: str, start: date | None, end: date | None) -> tuple[date, date]:
    today = datetime.now(ZoneInfo(time_zone)).date()
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise UnprocessableContent("`start` is after `end`.")
    if (end - start).days >= MAX_DAYS:
        raise UnprocessableContent(f"A report covers at most {MAX_DAYS} days.")
    return start, end


async def usage_report(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    period: UsagePeriod,
    groups: Sequence[UsageGroup],
    start: date | None,
    end: date | None,
    user_id: uuid.UUID | None = None,
) -> UsageReport:
    """The organization's usage (or one member's, `user_id`), per period of its calendar
    and per group, with the range's totals."""
    time_zone = await organizations_service.get_time_zone(session, principal.organization_id)
    start, end = _date_range(time_zone, start, end)
    groups = list(dict.fromkeys(groups))
    rows = await repository.report(
        session,
        principal.organization_id,
        time_zone,
        period.value,
        [group.value for group in groups],
        start,
        end,
        user_id,
    )
    return UsageReport(
        start=start,
        end=end,
        time_zone=time_zone,
        period=period,
        group_by=groups,
        rows=[UsageRow.model_validate(row._mapping) for row in rows],
        totals=UsageTotals(
            **{
                field: sum(getattr(row, field) for row in rows)
                for field in UsageTotals.model_fields
            }
        ),
    )


async def export_range(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    start: date | None,
    end: date | None,
) -> tuple[str, date, date]:
    """The organization's time zone and the export's range, checked in the request."""
    time_zone = await organizations_service.get_time_zone(session, principal.organization_id)
    start, end = _date_range(time_zone, start, end)
    return time_zone, start, end


EXPORT_BATCH = 500  # rows per piece of the response


async def export_csv(
    database: Database, organization_id: uuid.UUID, time_zone: str, start: date, end: date
) -> AsyncIterator[str]:
    """The range's events as CSV (a header, then one line per event, oldest first), read in
    a transaction of its own: the request's has committed before the body is sent."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(repository.EXPORT_COLUMNS)
    async with database.transaction((organization_id, None)) as connection:
        count = 0
        async for row in repository.export(connection, organization_id, time_zone, start, end):
            writer.writerow([_csv_value(value) for value in row.values()])
            count += 1
            if count % EXPORT_BATCH == 0:
                yield _take(buffer)
    yield _take(buffer)


def _csv_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return value  # a UUID, a number, text; None is an empty field


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
