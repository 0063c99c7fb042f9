"""The job queue: procrastinate's schema, as shipped by the pinned procrastinate.

Upgrading procrastinate means a migration that applies its delta scripts
(`procrastinate/sql/migrations/`) between the two versions.

Revision ID: c0c16e975f72
Revises: a56225a65dc6
Create Date: 2026-11-23 14:46:24.664334
"""

from collections.abc import Sequence

from procrastinate.schema import SchemaManager
from sqlalchemy.util import await_only

from alembic import context, op
from app.core.rls import grant_app_access

revision: str = "c0c16e975f72"
down_revision: str | None = "a56225a65dc6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _execute_script(script: str) -> None:
    # The schema is a script of many statements (with $$ bodies): asyncpg runs it as one simple
    # query, where SQLAlchemy's execute would prepare it as a single statement.
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None
    await_only(driver_connection.execute(script))


def upgrade() -> None:
    _execute_script(SchemaManager.get_schema())
    for statement in grant_app_access(context.config.attributes["app_role"]):
        op.execute(statement)


def downgrade() -> None:
    _execute_script(
        """
        DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
            procrastinate_jobs, procrastinate_workers CASCADE;
        DO $$
        DECLARE item record;
        BEGIN
            FOR item IN
                SELECT p.oid::regprocedure AS signature FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'public' AND p.proname LIKE 'procrastinate\\_%'
            LOOP
                EXECUTE 'DROP ROUTINE ' || item.signature || ' CASCADE';
            END LOOP;
            FOR item IN
                SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE n.nspname = 'public' AND t.typname LIKE 'procrastinate\\_%'
                  AND t.typtype IN ('e', 'c')
            LOOP
                EXECUTE 'DROP TYPE ' || quote_ident(item.typname) || ' CASCADE';
            END LOOP;
        END $$;
        """
    )
