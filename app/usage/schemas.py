import uuid
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from app.usage.models import UsagePurpose


class UsagePeriod(StrEnum):
    day = "day"
    week = "week"  # ISO weeks: Monday to Sunday
    month = "month"


class UsageGroup(StrEnum):
    agent = "agent"
    user = "user"
    model = "model"
    purpose = "purpose"


class UsageTotals(BaseModel):
    calls: int = Field(description="Model calls (usage events).")
    input_tokens: int = Field(description="Includes the cached input tokens.")
    cached_input_tokens: int
    output_tokens: int
    estimated_calls: int = Field(
        description="Calls whose tokens are this service's estimate: the provider sent no count."
    )
    cost_micro_usd: int = Field(description="The cost of the priced calls, in micro-USD.")
    unpriced_calls: int = Field(
        description="Calls of a model without a price in force: counted, not in the cost."
    )


class UsageRow(UsageTotals):
    period_start: date = Field(description="The period's first day, in the organization's zone.")
    agent_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    model_id: uuid.UUID | None = None
    model_name: str | None = None
    purpose: UsagePurpose | None = None


class UsageReport(BaseModel):
    start: date
    end: date
    time_zone: str
    period: UsagePeriod
    group_by: list[UsageGroup]
    rows: list[UsageRow]
    totals: UsageTotals
