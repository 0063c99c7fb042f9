"""Queries on the model registry. Row-level security shows an organization its own models
and the platform's; the filters here say the same where a reader can see it."""

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.repository import add_unless_duplicate, flush_unless_duplicate
from app.llm.models import ModelPrice, ProviderModel
from app.secrets.models import Secret


def _usable_by(organization_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(
        ProviderModel.owner_organization_id == organization_id,
        ProviderModel.owner_organization_id.is_(None),
    )


async def list_usable(
    session: AsyncSession, organization_id: uuid.UUID, capability: str | None, active_only: bool
) -> Sequence[tuple[ProviderModel, str | None]]:
    """(model, its key's hint), the platform's first, then by name."""
    query = (
        select(ProviderModel, Secret.hint)
        .outerjoin(Secret, Secret.id == ProviderModel.api_key_secret_id)
        .where(_usable_by(organization_id))
        .order_by(ProviderModel.owner_organization_id.is_not(None), ProviderModel.name)
    )
    if capability:
        query = query.where(ProviderModel.capabilities.contains([capability]))
    if active_only:
        query = query.where(ProviderModel.active)
    return [(model, hint) for model, hint in (await session.execute(query)).all()]


async def get_usable(
    session: AsyncSession, organization_id: uuid.UUID, model_id: uuid.UUID
) -> tuple[ProviderModel, str | None] | None:
    result = await session.execute(
        select(ProviderModel, Secret.hint)
        .outerjoin(Secret, Secret.id == ProviderModel.api_key_secret_id)
        .where(_usable_by(organization_id), ProviderModel.id == model_id)
    )
    row = result.one_or_none()
    return None if row is None else (row[0], row[1])


async def insert_model(session: AsyncSession, model: ProviderModel) -> bool:
    """False if the owner already has a model of this name."""
    return await add_unless_duplicate(session, model)


async def prices_of(
    session: AsyncSession, models: Sequence[ProviderModel]
) -> dict[uuid.UUID, list[ModelPrice]]:
    """Each model's price versions, the newest first; only prices of the model's own owner."""
    if not models:
        return {}
    owners = {model.id: model.owner_organization_id for model in models}
    result = await session.scalars(
        select(ModelPrice)
        .where(ModelPrice.model_id.in_(owners))
        .order_by(ModelPrice.model_id, ModelPrice.effective_from.desc())
    )
    prices: dict[uuid.UUID, list[ModelPrice]] = defaultdict(list)
    for price in result:
        if price.owner_organization_id == owners[price.model_id]:
            prices[price.model_id].append(price)
    return prices


async def insert_price(session: AsyncSession, price: ModelPrice) -> bool:
    """False if the model already has a price from that instant."""
    return await add_unless_duplicate(session, price)


async def delete_unless_used(session: AsyncSession, model: ProviderModel) -> bool:
    """Delete it; False (nothing deleted) if an agent names it (the RESTRICT foreign key)."""
    try:
        async with session.begin_nested():
            await session.delete(model)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def change_unless_duplicate(session: AsyncSession, change: Callable[[], None]) -> bool:
    """Make the change to a model and flush it; False if its new name is the owner's other
    model's."""
    return await flush_unless_duplicate(session, change)


# The newest version from before `at`, paired with the model's owner (as the usage ledger's
# charge is: app/usage/repository.py).
_PRICE_IN_FORCE = """
SELECT p.input_micro_usd, p.cached_input_micro_usd, p.output_micro_usd
FROM model_prices AS p
JOIN models AS m
  ON m.id = p.model_id AND m.owner_organization_id IS NOT DISTINCT FROM p.owner_organization_id
WHERE p.model_id = $1 AND p.effective_from <= $2
ORDER BY p.effective_from DESC
LIMIT 1
"""


async def price_in_force(
    connection: asyncpg.Connection, model_id: uuid.UUID, at: datetime
) -> asyncpg.Record | None:
    return await connection.fetchrow(_PRICE_IN_FORCE, model_id, at)
