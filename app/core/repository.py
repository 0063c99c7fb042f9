"""Query helpers shared by the repositories."""

import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.models import Base

ModelT = TypeVar("ModelT", bound=Base)


def column_list(model: type[Base], alias: str) -> str:
    """Every column of the model's table, as `alias.column, ...`, for a query on the driver
    connection that loads whole rows (`detached`): it follows the model."""
    return ", ".join(f"{alias}.{column.name}" for column in model.__table__.columns)


def detached(model: type[ModelT], row: Mapping[str, Any]) -> ModelT:
    """A row read on the driver connection (`column_list`) as the model, outside the session:
    to read, not to change (the session does not know it, so nothing set on it is saved).
    For the run's hot path, where SQLAlchemy's statement and result machinery cost several
    times the round trip (bench/bench_ttft.py, profiled)."""
    return model(**row)


async def upsert_if_newer(
    session: AsyncSession,
    model: type[Base],
    conflict_columns: list[str],
    values: dict[str, Any],
    version_column: str = "clerk_updated_at",
) -> uuid.UUID | None:
    """Insert the row, or update it if `values` is at least as new as what is stored.

    Mirrors of Clerk's objects arrive out of order: an older version must never overwrite a
    newer one. A NULL stored version (a row provisioned from a token or a stub) is always
    overwritten. Returns the row's id, or None when the stored row was newer.
    """
    table = model.__table__
    statement = insert(model).values(**values)
    version = table.c[version_column]
    update = {
        name: statement.excluded[name]
        for name in values
        if name not in conflict_columns and name != "id"
    }
    upsert = statement.on_conflict_do_update(
        index_elements=conflict_columns,
        set_={**update, "updated_at": statement.excluded.updated_at},
        where=or_(version.is_(None), version <= statement.excluded[version_column]),
    ).returning(table.c.id)
    result: uuid.UUID | None = await session.scalar(upsert)
    return result


async def insert_or_get_id(
    session: AsyncSession, model: type[Base], conflict_columns: list[str], values: dict[str, Any]
) -> uuid.UUID:
    """Insert the row unless one with the same key exists; the row's id either way. Two
    concurrent first requests of a new user both end with the same id."""
    table = model.__table__
    inserted: uuid.UUID | None = await session.scalar(
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(table.c.id)
    )
    if inserted is not None:
        return inserted
    existing: uuid.UUID | None = await session.scalar(
        select(table.c.id).where(*(table.c[name] == values[name] for name in conflict_columns))
    )
    assert existing is not None  # the conflicting row
    return existing


async def add_unless_duplicate(session: AsyncSession, row: Base) -> bool:
    """Add and flush the row; False (and the session unharmed, thanks to the savepoint) if a
    unique key already holds its values."""
    return await flush_unless_duplicate(session, lambda: session.add(row))


async def flush_unless_duplicate(session: AsyncSession, change: Callable[[], None]) -> bool:
    """Make `change` to the session's rows and flush it in a savepoint; False (the change
    undone, the session unharmed) if a unique key already holds the new values.

    The change is made inside the savepoint: `begin_nested()` flushes what is pending before
    it begins, so a change made earlier would be written, and fail, outside the savepoint,
    leaving the whole transaction broken."""
    try:
        async with session.begin_nested():
            change()
            await session.flush()
    except IntegrityError:
        return False
    return True
