"""The price a model call is charged at, for those that must know it before the call (a
budget's reservation, app/budgets/service.py); the usage ledger finds the same version as it
records the call (app/usage/repository.py)."""

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.llm import repository


@dataclass(frozen=True)
class Price:
    """Micro-USD per million tokens."""

    input: int
    cached_input: int
    output: int


async def price_in_force(
    connection: asyncpg.Connection, model_id: uuid.UUID, at: datetime
) -> Price | None:
    """The model's price version in force at `at`; None when it has none."""
    row = await repository.price_in_force(connection, model_id, at)
    if row is None:
        return None
    return Price(row["input_micro_usd"], row["cached_input_micro_usd"], row["output_micro_usd"])
