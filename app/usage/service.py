"""Usage and cost for an organization's admins: what its runs consumed, by day, agent, user
and model. Cost is tokens times the model's price (LLM_PRICES); a model without a price
has no cost rather than a made-up one."""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.identity import OrganizationPrincipal
from app.usage import repository
from app.usage.schemas import UsageReport, UsageRow

DEFAULT_DAYS = 30


def _cost(
    prices: dict[str, dict[str, float]], model: str | None, tokens_in: int, tokens_out: int
) -> float | None:
    price = prices.get(model or "")
    if price is None:
        return None
    return (tokens_in * price.get("input", 0) + tokens_out * price.get("output", 0)) / 1_000_000


async def usage_report(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    prices: dict[str, dict[str, float]],
    start: date | None,
    end: date | None,
) -> UsageReport:
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    rows = [
        UsageRow(
            day=row.day,
            agent_id=row.agent_id,
            user_id=row.user_id,
            model=row.model,
            answers=row.answers,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost_usd=_cost(prices, row.model, row.input_tokens, row.output_tokens),
        )
        for row in await repository.daily_usage(session, principal.organization_id, start, end)
    ]
    costs = [row.cost_usd for row in rows]
    return UsageReport(
        start=start,
        end=end,
        rows=rows,
        input_tokens=sum(row.input_tokens for row in rows),
        output_tokens=sum(row.output_tokens for row in rows),
        cost_usd=None if not rows or None in costs else sum(c for c in costs if c is not None),
    )
