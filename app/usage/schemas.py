import uuid
from datetime import date

from pydantic import BaseModel


class UsageRow(BaseModel):
    day: date
    agent_id: uuid.UUID
    user_id: uuid.UUID
    model: str | None
    answers: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


class UsageReport(BaseModel):
    start: date
    end: date
    rows: list[UsageRow]
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
