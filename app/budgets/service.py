"""Budgets that cannot be overshot: reservation before a model call, settlement after.

A call under budgets (the organization's, and its user's own) first **reserves** its worst
case in one short transaction that locks the budgets' current windows in the order of their
ids (no deadlocks): the bound of its input tokens (app/llm/context.py `bound_call_tokens`)
plus the output it may produce, which is its `max_tokens` clamped to what every window has
left at the model's price in force, so the reservation really bounds what the provider can
charge. What does not fit (less than MIN_OUTPUT_TOKENS of output left, or not even the
input) is refused with 429 `budget-exceeded`, naming the limit, what is spent and reserved,
and when the window resets. Under a cost budget a model without a price cannot be bounded:
refused with 409 `model-unpriced` (fail closed).

At the end the call **settles** in the transaction that records its usage event (the
answer's save): the event's real cost (or tokens) is added to `spent` of the windows it
reserved in, and the reservation is given back, whatever the call used (nothing, if it
failed before an answer). Since spent + reserved never exceeds the limit when a reservation
is made, and a call never costs more than it reserved, spent never exceeds the limit.

Calls that reserve nothing (embeddings of ingestion and search, models' tests: their input is
small and known) are still charged to the windows as they are recorded (`account`), and a
window they push to its limit refuses the next runs.

A reservation whose call crashed (the process died between reservation and settlement)
expires after the longest a run can take and its last save be retried
(`reservation_seconds`); a reservation gives back the expired ones of the windows it locks,
and a periodic job (app/budgets/tasks.py) those of every window.

Crossing a soft threshold while settling writes one notification per threshold per window
(`notified` remembers it) and returns a `BudgetWarning` for the run's `budget.warning`
event.
"""

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.identity import OrganizationPrincipal
from app.budgets import repository
from app.budgets.errors import (
    BudgetExceeded,
    BudgetExists,
    BudgetNotFound,
    ModelUnpriced,
    NotAMember,
)
from app.budgets.models import Budget, BudgetMetric, BudgetWindow
from app.budgets.schemas import BudgetCreate, BudgetRead, BudgetUpdate, BudgetWindowRead
from app.llm import prices
from app.llm.prices import Price
from app.notifications import service as notifications_service
from app.notifications.service import Notice
from app.organizations import service as organizations_service
from app.usage import service as usage_service
from app.usage.service import Attribution, ModelCall, Recorded

MIN_OUTPUT_TOKENS = 64  # less output left than this is not worth a call: refused
WARNING_EVENT = "budget.warning"  # the AG-UI CUSTOM event's name, and the notification's kind
EXPIRY_MARGIN_SECONDS = 60.0
UNBOUNDED = 2**62  # output that costs nothing fits whatever is left


def reservation_seconds(run_max_seconds: float, save_retry_seconds: float) -> float:
    """How long a reservation holds before its call is taken to have crashed: the longest a
    run may take, then its last save's retries, and a margin."""
    return run_max_seconds + save_retry_seconds + EXPIRY_MARGIN_SECONDS


@dataclass(frozen=True)
class Reservation:
    request_id: str
    # The most output the call may ask for (its `max_tokens`); None: no budget applies.
    max_output_tokens: int | None


@dataclass(frozen=True)
class BudgetWarning:
    budget_id: uuid.UUID
    user_id: uuid.UUID | None
    metric: BudgetMetric
    threshold: int
    limit: int
    spent: int
    resets_at: str  # ISO 8601, in the organization's time zone

    def as_event_value(self) -> dict[str, Any]:
        return {
            key: str(value) if isinstance(value, uuid.UUID) else value
            for key, value in asdict(self).items()
        }


async def reserve(
    connection: asyncpg.Connection,
    attribution: Attribution,
    request_id: str,
    model_id: uuid.UUID,
    input_tokens: int,
    output_tokens: int,
    expires_in_seconds: float,
) -> Reservation:
    """Reserve what the call may cost at most (`input_tokens`, a bound, and up to
    `output_tokens` of output) in every window that applies, in the connection's
    transaction; or refuse it. The reservation's `max_output_tokens` is what the call must
    ask the model for."""
    organization_id = attribution.organization_id
    budgets, time_zone = await repository.applicable(
        connection, organization_id, attribution.user_id
    )
    if not budgets:
        return Reservation(request_id, None)
    now = datetime.now(UTC)
    price = None
    if any(budget["metric"] == BudgetMetric.cost for budget in budgets):
        price = await prices.price_in_force(connection, model_id, now)
        if price is None:
            raise ModelUnpriced(
                "The model has no price, and a cost budget applies: a call it cannot bound "
                "is refused. An admin can give the model a price."
            )
    windows = await repository.lock_windows(
        connection, organization_id, [budget["id"] for budget in budgets], now, time_zone
    )
    expired = [window["id"] for window in windows if window["has_expired"]]
    given_back = (
        await repository.release_expired(connection, organization_id, now, expired)
        if expired
        else {}
    )
    window_of = {window["budget_id"]: window for window in windows}
    allowed, tightest = output_tokens, None
    for budget in budgets:
        window = window_of[budget["id"]]
        left = _left(budget, window, given_back.get(window["id"], 0))
        fits = _output_that_fits(BudgetMetric(budget["metric"]), left, input_tokens, price)
        if fits < allowed:
            allowed, tightest = fits, (budget, window, left)
    if allowed < min(MIN_OUTPUT_TOKENS, output_tokens) and tightest is not None:
        raise _exceeded(*tightest, time_zone)
    amounts = {
        window_of[budget["id"]]["id"]: _amount(
            BudgetMetric(budget["metric"]), input_tokens, allowed, price
        )
        for budget in budgets
    }
    expires_at = now + timedelta(seconds=expires_in_seconds)
    await repository.hold(connection, organization_id, request_id, amounts, expires_at)
    return Reservation(request_id, allowed)


def _left(budget: asyncpg.Record, window: asyncpg.Record, given_back: int) -> int:
    return int(budget["limit_amount"] - window["spent"] - (window["reserved"] - given_back))


def _output_that_fits(
    metric: BudgetMetric, left: int, input_tokens: int, price: Price | None
) -> int:
    """The most output tokens a call with this input bound can make within `left` (below 0:
    not even its input fits)."""
    if metric == BudgetMetric.tokens:
        return left - input_tokens
    assert price is not None
    # In micro-USD per million tokens, as prices are: exact integers, no rounding to lose.
    room = left * 1_000_000 - input_tokens * max(price.input, price.cached_input)
    if room < 0:
        return -1
    if price.output == 0:
        return UNBOUNDED
    return room // price.output


def _amount(
    metric: BudgetMetric, input_tokens: int, output_tokens: int, price: Price | None
) -> int:
    """The most a call costs in the metric: its input bound at the dearer input price, its
    output at the output price, rounded up as the ledger rounds."""
    if metric == BudgetMetric.tokens:
        return input_tokens + output_tokens
    assert price is not None
    scaled = input_tokens * max(price.input, price.cached_input) + output_tokens * price.output
    return -(-scaled // 1_000_000)


def _exceeded(
    budget: asyncpg.Record, window: asyncpg.Record, left: int, time_zone: str
) -> BudgetExceeded:
    metric = BudgetMetric(budget["metric"])
    whose = "The organization's" if budget["user_id"] is None else "Your"
    resets_at = window["ends_at"].astimezone(ZoneInfo(time_zone))
    spent, reserved, limit = window["spent"], window["reserved"], budget["limit_amount"]
    detail = (
        f"{whose} monthly {metric.value} budget of {_shown(metric, limit)} has "
        f"{_shown(metric, max(left, 0))} left ({_shown(metric, spent)} spent, "
        f"{_shown(metric, reserved)} reserved by calls in progress): not enough for this "
        f"call. It resets at {resets_at.isoformat()}."
    )
    seconds = max(int((resets_at - datetime.now(UTC)).total_seconds()), 1)
    return BudgetExceeded(
        detail,
        headers={"Retry-After": str(seconds)},
        budget_id=str(budget["id"]),
        metric=metric.value,
        limit=limit,
        spent=spent,
        reserved=reserved,
        resets_at=resets_at.isoformat(),
    )


def _shown(metric: BudgetMetric, amount: int) -> str:
    if metric == BudgetMetric.tokens:
        return f"{amount:,} tokens"
    return f"USD {amount / 1_000_000:,.2f}" if amount >= 10_000 else f"USD {amount / 1e6:.6f}"


async def account(
    connection: asyncpg.Connection,
    attribution: Attribution,
    calls: Sequence[ModelCall],
    reserved: Sequence[str] = (),
) -> list[BudgetWarning]:
    """Record the calls in the usage ledger and charge what they cost to the budgets'
    windows, giving back what the `reserved` calls (their request ids) had reserved; in
    the connection's transaction, the work's own. The soft thresholds this crossed."""
    recorded = await usage_service.record(connection, attribution, calls)
    return await _settle(connection, attribution, recorded, reserved)


async def release(
    connection: asyncpg.Connection, attribution: Attribution, reserved: Sequence[str]
) -> None:
    """Give back what calls that will not be recorded had reserved."""
    await _settle(connection, attribution, [], reserved)


async def _settle(
    connection: asyncpg.Connection,
    attribution: Attribution,
    recorded: Sequence[Recorded],
    reserved: Sequence[str],
) -> list[BudgetWarning]:
    organization_id = attribution.organization_id
    budgets, time_zone = await repository.applicable(
        connection, organization_id, attribution.user_id
    )
    charged_budgets = [budget["id"] for budget in budgets] if recorded else []
    if not reserved and not charged_budgets:
        return []
    at = min((call.occurred_at for call in recorded), default=datetime.now(UTC))
    windows = await repository.lock_windows(
        connection, organization_id, charged_budgets, at, time_zone, request_ids=reserved
    )
    # A call is charged where it reserved (a window of last month, if it reserved then);
    # in a budget it reserved nothing in, in the window that holds the call.
    window_of: dict[uuid.UUID, asyncpg.Record] = {}
    for window in sorted(windows, key=lambda window: not window["reserved_here"]):
        if window["reserved_here"] or window["starts_at"] <= at < window["ends_at"]:
            window_of.setdefault(window["budget_id"], window)
    cost = sum(call.cost_micro_usd or 0 for call in recorded)
    tokens = sum(call.tokens for call in recorded)
    charges: list[tuple[uuid.UUID, int, list[int]]] = []
    warnings: list[BudgetWarning] = []
    for budget in budgets if recorded else []:
        window = window_of[budget["id"]]
        metric = BudgetMetric(budget["metric"])
        amount = cost if metric == BudgetMetric.cost else tokens
        spent, limit = window["spent"] + amount, budget["limit_amount"]
        crossed = [
            threshold
            for threshold in budget["thresholds"]
            if threshold not in window["notified"] and spent * 100 >= threshold * limit
        ]
        charges.append((window["id"], amount, sorted([*window["notified"], *crossed])))
        resets_at = window["ends_at"].astimezone(ZoneInfo(time_zone)).isoformat()
        warnings += [
            BudgetWarning(
                budget["id"], budget["user_id"], metric, threshold, limit, spent, resets_at
            )
            for threshold in crossed
        ]
    await repository.settle(connection, organization_id, reserved, charges)
    await notifications_service.notify(
        connection, organization_id, [_notice(warning) for warning in warnings]
    )
    return warnings


def _notice(warning: BudgetWarning) -> Notice:
    whose = "The organization's" if warning.user_id is None else "A member's"
    message = (
        f"{whose} monthly {warning.metric.value} budget is {warning.threshold}% used: "
        f"{_shown(warning.metric, warning.spent)} of {_shown(warning.metric, warning.limit)}; "
        f"it resets at {warning.resets_at}."
    )
    return Notice(warning.user_id, WARNING_EVENT, message, warning.as_event_value())


async def release_expired(connection: asyncpg.Connection, organization_id: uuid.UUID) -> int:
    """Give back every expired reservation of the organization (the periodic job); the
    amount given back."""
    now = datetime.now(UTC)
    expired = await repository.expired_windows(connection, organization_id, now)
    if not expired:
        return 0
    await repository.lock_windows(connection, organization_id, [], now, "UTC", window_ids=expired)
    given_back = await repository.release_expired(connection, organization_id, now, expired)
    return sum(given_back.values())


# Management (`/budgets`, admins).


async def list_budgets(session: AsyncSession, principal: OrganizationPrincipal) -> list[BudgetRead]:
    budgets = await repository.list_budgets(session, principal.organization_id)
    return await _read(session, principal, list(budgets))


async def read_budget(
    session: AsyncSession, principal: OrganizationPrincipal, budget_id: uuid.UUID
) -> BudgetRead:
    [read] = await _read(session, principal, [await _get(session, principal, budget_id)])
    return read


async def create_budget(
    session: AsyncSession, principal: OrganizationPrincipal, data: BudgetCreate
) -> BudgetRead:
    if data.user_id is not None and not await organizations_service.is_member(
        session, principal.organization_id, data.user_id
    ):
        raise NotAMember(f"User {data.user_id} is not a member of this organization.")
    budget = Budget(
        organization_id=principal.organization_id,
        user_id=data.user_id,
        metric=data.metric,
        limit_amount=data.limit,
        thresholds=data.thresholds,
    )
    if not await repository.insert_budget(session, budget):
        whose = "the organization" if data.user_id is None else "this member"
        raise BudgetExists(f"{whose.capitalize()} already has a {data.metric.value} budget.")
    return await read_budget(session, principal, budget.id)


async def update_budget(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    budget_id: uuid.UUID,
    data: BudgetUpdate,
) -> BudgetRead:
    budget = await _get(session, principal, budget_id)
    changes = data.model_dump(exclude_unset=True)
    if "limit" in changes:
        budget.limit_amount = changes["limit"]
    if "thresholds" in changes:
        budget.thresholds = changes["thresholds"]
    await session.flush()
    return await read_budget(session, principal, budget_id)


async def delete_budget(
    session: AsyncSession, principal: OrganizationPrincipal, budget_id: uuid.UUID
) -> None:
    """The budget goes with its windows and reservations (calls in progress settle under
    the budgets that remain)."""
    await session.delete(await _get(session, principal, budget_id))
    await session.flush()


async def _get(
    session: AsyncSession, principal: OrganizationPrincipal, budget_id: uuid.UUID
) -> Budget:
    budget = await repository.get_budget(session, principal.organization_id, budget_id)
    if budget is None:
        raise BudgetNotFound()
    return budget


async def _read(
    session: AsyncSession, principal: OrganizationPrincipal, budgets: list[Budget]
) -> list[BudgetRead]:
    """With each budget's current window: as it stands, or as it will start (nothing spent)
    when no call has needed it yet."""
    now = datetime.now(UTC)
    time_zone = await organizations_service.get_time_zone(session, principal.organization_id)
    windows = await repository.current_windows(
        session, principal.organization_id, [budget.id for budget in budgets], now
    )
    return [_view(budget, windows.get(budget.id), now, time_zone) for budget in budgets]


def _view(budget: Budget, window: BudgetWindow | None, now: datetime, time_zone: str) -> BudgetRead:
    zone = ZoneInfo(time_zone)
    if window is None:
        starts_at, resets_at = _month_of(now, zone)
        spent = reserved = 0
    else:
        starts_at, resets_at = window.starts_at.astimezone(zone), window.ends_at.astimezone(zone)
        spent, reserved = window.spent, window.reserved
    return BudgetRead(
        id=budget.id,
        metric=budget.metric,
        limit=budget.limit_amount,
        user_id=budget.user_id,
        thresholds=budget.thresholds,
        current_window=BudgetWindowRead(
            starts_at=starts_at,
            resets_at=resets_at,
            spent=spent,
            reserved=reserved,
            remaining=max(budget.limit_amount - spent - reserved, 0),
        ),
        created_at=budget.created_at,
        updated_at=budget.updated_at,
    )


def _month_of(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    local = now.astimezone(zone)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(tzinfo=zone), end.replace(tzinfo=zone)
