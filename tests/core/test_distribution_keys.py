"""The schema can be distributed by organization (docs/scale-out.md): found from the catalog,
like the row-level security test, so a new table with `organization_id` cannot slip past.

Citus (and any sharding by tenant) can enforce a primary key or a unique key of a distributed
table only if it contains the distribution column, and joins a foreign key between two
distributed tables only if it pairs their distribution columns: each shard checks its own rows.
"""

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

DISTRIBUTION_COLUMN = "organization_id"

# Key columns only (not INCLUDE columns); an expression in an index has no column name.
UNIQUE_INDEXES_SQL = text(
    """
    SELECT c.relname AS table_name, i.relname AS index_name, x.indisprimary AS is_primary,
        ARRAY(
            SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
            WHERE k.n <= x.indnkeyatts ORDER BY k.n
        ) AS key_columns
    FROM pg_index x
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND x.indisunique AND c.relname = ANY(:tables)
    ORDER BY c.relname, i.relname
    """
)

# Each foreign key as the (column, referenced column) pairs it matches on.
FOREIGN_KEYS_SQL = text(
    """
    SELECT con.conname AS name, c.relname AS table_name, r.relname AS referenced_table,
        ARRAY(
            SELECT a.attname || '=' || ra.attname
            FROM unnest(con.conkey, con.confkey) AS k(attnum, referenced_attnum)
            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
            JOIN pg_attribute ra ON ra.attrelid = con.confrelid
                AND ra.attnum = k.referenced_attnum
        ) AS pairs
    FROM pg_constraint con
    JOIN pg_class c ON c.oid = con.conrelid
    JOIN pg_class r ON r.oid = con.confrelid
    WHERE con.contype = 'f' AND c.relname = ANY(:tables) AND r.relname = ANY(:tables)
    ORDER BY con.conname
    """
)


@dataclass(frozen=True)
class UniqueIndex:
    table: str
    name: str
    is_primary: bool
    columns: list[str]


async def tables_with_organization_id(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        text(
            """
            SELECT c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
              AND a.attname = :column AND NOT a.attisdropped
            ORDER BY c.relname
            """
        ),
        {"column": DISTRIBUTION_COLUMN},
    )
    return list(rows.scalars())


async def unique_indexes(session: AsyncSession, tables: list[str]) -> list[UniqueIndex]:
    rows = await session.execute(UNIQUE_INDEXES_SQL, {"tables": tables})
    return [
        UniqueIndex(row.table_name, row.index_name, row.is_primary, list(row.key_columns))
        for row in rows
    ]


async def test_the_catalog_finds_the_tables_to_distribute(session: AsyncSession) -> None:
    assert set(await tables_with_organization_id(session)) >= {
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
    }


async def test_every_tenant_tables_primary_key_contains_organization_id(
    session: AsyncSession,
) -> None:
    tables = await tables_with_organization_id(session)
    indexes = await unique_indexes(session, tables)
    primary_keys = {index.table: index.columns for index in indexes if index.is_primary}
    wrong = {
        table: primary_keys.get(table, "no primary key")
        for table in tables
        if DISTRIBUTION_COLUMN not in primary_keys.get(table, [])
    }
    assert wrong == {}, "primary keys without organization_id"


async def test_every_unique_key_of_a_tenant_table_contains_organization_id(
    session: AsyncSession,
) -> None:
    """Unique constraints and unique indexes alike (a constraint is enforced by its index)."""
    tables = await tables_with_organization_id(session)
    wrong = {
        index.name: index.columns
        for index in await unique_indexes(session, tables)
        if DISTRIBUTION_COLUMN not in index.columns
    }
    assert wrong == {}, "unique keys without organization_id"


async def test_foreign_keys_between_tenant_tables_pair_their_organizations(
    session: AsyncSession,
) -> None:
    """Such a key must reference the other table's row together with its organization: one
    shard holds both rows (co-location), and no row can point at another tenant's."""
    tables = await tables_with_organization_id(session)
    rows = (await session.execute(FOREIGN_KEYS_SQL, {"tables": tables})).all()
    assert rows, "no foreign key between tenant tables found"
    same_organization = f"{DISTRIBUTION_COLUMN}={DISTRIBUTION_COLUMN}"
    wrong = {row.name: row.pairs for row in rows if same_organization not in row.pairs}
    assert wrong == {}, "foreign keys that do not carry organization_id"
