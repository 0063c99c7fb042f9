import uuid
from datetime import datetime
from typing import Annotated

from pydantic import MISSING, AfterValidator, BaseModel, ConfigDict, Field

from app.budgets.models import BudgetMetric

MAX_LIMIT = 2**62  # micro-USD or tokens: far beyond any bill, well inside a bigint


def _ascending(thresholds: list[int]) -> list[int]:
    return sorted(set(thresholds))


Limit = Annotated[
    int,
    Field(
        gt=0,
        le=MAX_LIMIT,
        description="The hard limit per calendar month: micro-USD for `cost` (USD 10 is "
        "10000000), tokens (input and output) for `tokens`.",
    ),
]
Thresholds = Annotated[
    list[Annotated[int, Field(ge=1, le=100)]],
    AfterValidator(_ascending),
    Field(
        max_length=10,
        description="Soft thresholds, in percent of the limit: crossing one writes a "
        "notification (and a `budget.warning` event in the run that crossed it), once a month.",
    ),
]


class BudgetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: BudgetMetric
    limit: Limit
    user_id: uuid.UUID | None = Field(
        default=None,
        description="A member's own budget within the organization; none: the organization's.",
    )
    thresholds: Thresholds = [80]


class BudgetUpdate(BaseModel):
    """A partial update: the fields sent change, from the current window on."""

    model_config = ConfigDict(extra="forbid")

    limit: Limit | MISSING = MISSING
    thresholds: Thresholds | MISSING = MISSING


class BudgetWindowRead(BaseModel):
    starts_at: datetime = Field(description="The month's start in the organization's zone.")
    resets_at: datetime = Field(description="When the next month's window begins.")
    spent: int = Field(description="What the month's model calls cost (settled).")
    reserved: int = Field(description="What calls in progress may still cost at most.")
    remaining: int = Field(description="The limit less spent and reserved (never below 0).")


class BudgetRead(BaseModel):
    id: uuid.UUID
    metric: BudgetMetric
    limit: int
    user_id: uuid.UUID | None
    thresholds: list[int]
    current_window: BudgetWindowRead
    created_at: datetime
    updated_at: datetime
