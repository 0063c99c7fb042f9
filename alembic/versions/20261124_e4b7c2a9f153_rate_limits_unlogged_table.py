"""Rate limits' state (app/limits/): one row per key with its theoretical arrival time.

UNLOGGED: written on every limited request, not worth the write-ahead log; emptied after a
crash, which forgives one period's counts. Infrastructure, not tenant data: a key and a
time, no organization_id and no content, so no row-level security (like webhook_events).
The application role reads and writes its rows; the grant is made here because the
baseline's grant covered only the tables that existed then.

Revision ID: e4b7c2a9f153
Revises: 7d2c41e8b6f0
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import context, op

revision: str = "e4b7c2a9f153"
down_revision: str | None = "7d2c41e8b6f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    app_role = '"' + context.config.attributes["app_role"].replace('"', '""') + '"'
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("theoretical_arrival_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limits")),
        prefixes=["UNLOGGED"],
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limits TO {app_role}")


def downgrade() -> None:
    op.drop_table("rate_limits")
