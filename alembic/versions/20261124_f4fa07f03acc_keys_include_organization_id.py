"""Every tenant table's primary key is (organization_id, id), and every unique key includes
organization_id: the schema can be distributed by organization (docs/scale-out.md), since
Citus enforces a key of a distributed table only if it contains the distribution column.

What the API shows is unchanged: ids stay UUIDs from gen_random_uuid() (or uuid4), unique in
practice. What this gives up: a bare `id` is no longer unique by constraint, only
`(organization_id, id)`. Every query of the service already names both (style: no "get by id"
that ignores the tenant), so each still finds its row by the primary key's index.

One id is chosen by clients: a conversation's, which is AG-UI's threadId. Until now the
primary key on `id` alone made it unique across organizations, and a run naming another
organization's thread was a 404, found by the conflict of its INSERT ... ON CONFLICT
(`conversations.repository.insert_with_id`) or, for CopilotKit's connect, by that insert
tried in a savepoint. Under Citus no constraint can say "unique across organizations", and a
lookup across organizations would ask every shard on each new thread (and still race), so
thread ids are unique per organization: a run with another organization's threadId creates
the caller's own conversation with that id, which the other organization never sees (row-level
security and the composite keys keep the two apart); connect shows it as a new, empty thread.
Nothing leaks, and no longer even the fact that the id is in use elsewhere, which the 404 told.
Nothing in the service looks a conversation up by its id without the organization (rows,
joins, file keys `{org_id}/{user_id}/{conversation_id}/…`, jobs).

`storage_path` (of files and knowledge sources) begins with the organization's id, so
`(organization_id, storage_path)` allows what `storage_path` allowed; Clerk's membership ids
are unique in Clerk, so `(organization_id, clerk_id)` too.

The four `(organization_id, id)` unique keys that the composite foreign keys referenced
become the primary keys: the foreign keys are dropped, and made again on the new keys. Each
ALTER holds its table's ACCESS EXCLUSIVE lock while the key's index is built and the foreign
keys are checked again: 0.1 s on the tests' database, 2.3 s with 100,000 conversations, a
million messages, 100,000 files and as many embeddings (2-core machine). A much larger
database wants a maintenance window, or the indexes built first with CREATE UNIQUE INDEX
CONCURRENTLY and attached with ADD PRIMARY KEY USING INDEX.

Revision ID: f4fa07f03acc
Revises: e4b7c2a9f153
Create Date: 2026-11-24 15:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f4fa07f03acc"
down_revision: str | None = "e4b7c2a9f153"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "memberships",
    "organization_agents",
    "agent_knowledge_sources",
    "agent_quick_tasks",
    "conversations",
    "messages",
    "files",
    "message_files",
    "agent_states",
    "embeddings",
)

# The tables other tenant tables reference, by a unique key on (organization_id, id).
REFERENCED_TABLES = ("agent_knowledge_sources", "conversations", "files", "messages")

# (table, column, referenced table): the composite foreign keys onto those.
TENANT_REFERENCES = (
    ("agent_states", "conversation_id", "conversations"),
    ("files", "conversation_id", "conversations"),
    ("messages", "conversation_id", "conversations"),
    ("embeddings", "conversation_id", "conversations"),
    ("embeddings", "file_id", "files"),
    ("embeddings", "knowledge_source_id", "agent_knowledge_sources"),
    ("message_files", "file_id", "files"),
    ("message_files", "message_id", "messages"),
)

# (table, column): unique keys that now include organization_id.
UNIQUE_COLUMNS = (
    ("agent_knowledge_sources", "storage_path"),
    ("files", "storage_path"),
    ("memberships", "clerk_id"),
)


def upgrade() -> None:
    _drop_tenant_references()
    for table in REFERENCED_TABLES:
        op.drop_constraint(op.f(f"uq_{table}_organization_id_id"), table, type_="unique")
    for table in TENANT_TABLES:
        op.drop_constraint(op.f(f"pk_{table}"), table, type_="primary")
        op.create_primary_key(op.f(f"pk_{table}"), table, ["organization_id", "id"])
    _create_tenant_references()
    for table, column in UNIQUE_COLUMNS:
        op.drop_constraint(op.f(f"uq_{table}_{column}"), table, type_="unique")
        op.create_unique_constraint(
            op.f(f"uq_{table}_organization_id_{column}"), table, ["organization_id", column]
        )


def downgrade() -> None:
    for table, column in UNIQUE_COLUMNS:
        op.drop_constraint(op.f(f"uq_{table}_organization_id_{column}"), table, type_="unique")
        op.create_unique_constraint(op.f(f"uq_{table}_{column}"), table, [column])
    _drop_tenant_references()
    for table in TENANT_TABLES:
        op.drop_constraint(op.f(f"pk_{table}"), table, type_="primary")
        op.create_primary_key(op.f(f"pk_{table}"), table, ["id"])
    for table in REFERENCED_TABLES:
        op.create_unique_constraint(
            op.f(f"uq_{table}_organization_id_id"), table, ["organization_id", "id"]
        )
    _create_tenant_references()


def _reference_name(table: str, column: str, referenced: str) -> str:
    return op.f(f"fk_{table}_organization_id_{column}_{referenced}")


def _drop_tenant_references() -> None:
    for table, column, referenced in TENANT_REFERENCES:
        op.drop_constraint(_reference_name(table, column, referenced), table, type_="foreignkey")


def _create_tenant_references() -> None:
    for table, column, referenced in TENANT_REFERENCES:
        op.create_foreign_key(
            _reference_name(table, column, referenced),
            table,
            referenced,
            ["organization_id", column],
            ["organization_id", "id"],
            ondelete="CASCADE",
        )
