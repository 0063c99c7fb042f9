"""Migrations run as the owner role. The URL comes from the caller (`ajc migrate`, the tests)
or, for a bare `alembic` command, from the settings: the embedded PostgreSQL is started for
the command when DATABASE_URL is unset."""

import asyncio
from contextlib import ExitStack

from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from app.core.all_models import Base
from app.core.embedded import open_database
from app.core.settings import get_settings

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # procrastinate's tables come from its own schema migration, not from our models.
    return not (type_ == "table" and name is not None and name.startswith("procrastinate_"))


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        compare_server_default=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
    await engine.dispose()


def main() -> None:
    settings = get_settings()
    if config.attributes.get("app_role") is None:
        config.attributes["app_role"] = settings.database_app_role
    with ExitStack() as stack:
        url = config.attributes.get("owner_url")
        if url is None:
            url = stack.enter_context(open_database(settings)).owner
        asyncio.run(run_async(url))


main()
