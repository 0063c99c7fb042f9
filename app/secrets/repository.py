import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import ColumnElement

from app.secrets.models import DataKey, Secret


def _owned_by(
    column: InstrumentedAttribute[uuid.UUID | None], owner: uuid.UUID | None
) -> ColumnElement[bool]:
    return column.is_not_distinct_from(owner)


async def current_data_key(session: AsyncSession, owner: uuid.UUID | None) -> DataKey | None:
    result = await session.execute(
        select(DataKey).where(_owned_by(DataKey.owner_organization_id, owner), DataKey.current)
    )
    return result.scalar_one_or_none()


async def insert_current_data_key(session: AsyncSession, data_key: DataKey) -> None:
    """Inserts it unless the owner already has a current one (a concurrent first secret)."""
    await session.execute(
        insert(DataKey)
        .values(
            id=data_key.id,
            owner_organization_id=data_key.owner_organization_id,
            master_key_id=data_key.master_key_id,
            wrapped=data_key.wrapped,
            current=True,
        )
        .on_conflict_do_nothing(
            index_elements=[DataKey.owner_organization_id], index_where=text("current")
        )
    )


async def get_data_key(
    session: AsyncSession, owner: uuid.UUID | None, data_key_id: uuid.UUID
) -> DataKey | None:
    result = await session.execute(
        select(DataKey).where(
            _owned_by(DataKey.owner_organization_id, owner), DataKey.id == data_key_id
        )
    )
    return result.scalar_one_or_none()


async def get_secret(
    session: AsyncSession, owner: uuid.UUID | None, secret_id: uuid.UUID
) -> Secret | None:
    result = await session.execute(
        select(Secret).where(_owned_by(Secret.owner_organization_id, owner), Secret.id == secret_id)
    )
    return result.scalar_one_or_none()


async def delete_secret(
    session: AsyncSession, owner: uuid.UUID | None, secret_id: uuid.UUID
) -> None:
    await session.execute(
        delete(Secret).where(_owned_by(Secret.owner_organization_id, owner), Secret.id == secret_id)
    )


# Maintenance across owners (`ajc rotate-keys`, as the owner role): each batch a transaction.


async def data_keys_not_under(
    session: AsyncSession, master_key_id: str, limit: int
) -> Sequence[DataKey]:
    result = await session.execute(
        select(DataKey)
        .where(DataKey.master_key_id != master_key_id)
        .order_by(DataKey.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return result.scalars().all()


async def count_data_keys_not_under(session: AsyncSession, master_key_id: str) -> int:
    query = select(func.count()).select_from(DataKey).where(DataKey.master_key_id != master_key_id)
    return (await session.execute(query)).scalar_one()


async def retire_current_data_keys(session: AsyncSession) -> None:
    await session.execute(update(DataKey).where(DataKey.current).values(current=False))


def _under_retired_key() -> ColumnElement[bool]:
    return Secret.data_key_id.in_(select(DataKey.id).where(DataKey.current.is_(False)))


async def secrets_under_retired_keys(session: AsyncSession, limit: int) -> Sequence[Secret]:
    result = await session.execute(
        select(Secret)
        .where(_under_retired_key())
        .order_by(Secret.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return result.scalars().all()


async def count_secrets_under_retired_keys(session: AsyncSession) -> int:
    query = select(func.count()).select_from(Secret).where(_under_retired_key())
    return (await session.execute(query)).scalar_one()


async def delete_unused_retired_data_keys(session: AsyncSession) -> int:
    result = await session.execute(
        delete(DataKey)
        .where(DataKey.current.is_(False), ~DataKey.id.in_(select(Secret.data_key_id)))
        .returning(DataKey.id)
    )
    return len(result.all())
