"""Row-level security on every tenant table, found from the catalog so that a new table with
`organization_id` cannot slip past: each must have RLS enabled and forced, and as the
application role a transaction sees and writes exactly one organization's rows."""

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent, AgentVisibility
from app.core.db import set_tenant
from app.organizations.models import Membership
from tests.factories import Tenant, make_agent, make_org, make_tenant

TENANT_TABLES_SQL = text(
    """
    SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
      AND a.attname = 'organization_id' AND NOT a.attisdropped
    ORDER BY c.relname
    """
)


async def tenant_tables(session: AsyncSession) -> list[tuple[str, bool, bool]]:
    rows = (await session.execute(TENANT_TABLES_SQL)).all()
    return [(row.relname, row.relrowsecurity, row.relforcerowsecurity) for row in rows]


async def insertable_columns(session: AsyncSession, table: str) -> list[str]:
    rows = await session.execute(
        text(
            "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:table AS regclass) "
            "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"
        ),
        {"table": table},
    )
    return [name for (name,) in rows.all()]


@pytest.fixture
async def two_tenants(session: AsyncSession) -> tuple[Tenant, Tenant]:
    return await make_tenant(session), await make_tenant(session)


async def test_the_catalog_finds_the_tenant_tables_of_the_design(session: AsyncSession) -> None:
    names = {name for name, _, _ in await tenant_tables(session)}
    assert names >= {
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


async def test_every_tenant_table_has_row_level_security_enabled_and_forced(
    session: AsyncSession,
) -> None:
    for name, enabled, forced in await tenant_tables(session):
        assert enabled, f"{name}: row-level security is not enabled"
        assert forced, f"{name}: row-level security is not forced"


async def test_the_application_role_cannot_bypass_row_level_security(
    session: AsyncSession,
) -> None:
    row = (
        await session.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        )
    ).one()
    assert tuple(row) == (False, False)
    owners = await session.execute(
        text(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public' "
            "AND tableowner = current_user"
        )
    )
    assert owners.all() == [], "the application role must not own the tables"


async def test_each_tenant_table_shows_only_the_current_organizations_rows(
    session: AsyncSession, two_tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = two_tenants
    for tenant, other in ((a, b), (b, a)):
        await set_tenant(session, tenant.org.id)
        for table, _, _ in await tenant_tables(session):
            owners = (
                (await session.execute(text(f"SELECT organization_id FROM {table}")))
                .scalars()
                .all()
            )
            assert owners, f"{table}: the factory made no row for this organization"
            assert set(owners) == {tenant.org.id}, f"{table} leaks {other.org.id}"


async def test_without_an_organization_no_tenant_row_is_visible(
    session: AsyncSession, two_tenants: tuple[Tenant, Tenant]
) -> None:
    await set_tenant(session, None)
    for table, _, _ in await tenant_tables(session):
        count = await session.scalar(text(f"SELECT count(*) FROM {table}"))
        assert count == 0, f"{table} shows {count} rows with no organization set"


async def test_insert_naming_another_organization_is_refused(
    session: AsyncSession, two_tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = two_tenants
    await set_tenant(session, a.org.id)
    for table, _, _ in await tenant_tables(session):
        columns = ", ".join(await insertable_columns(session, table))
        # A copy of one of A's rows, with a new id, claiming to be B's.
        statement = text(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_populate_record("
            f"NULL::{table}, (SELECT to_jsonb(x) FROM {table} x LIMIT 1) "
            "|| jsonb_build_object('id', gen_random_uuid(), 'organization_id', "
            "CAST(:other AS uuid)))"
        )
        with pytest.raises(DBAPIError, match="row-level security"):
            async with session.begin_nested():
                await session.execute(statement, {"other": b.org.id})


async def writable(session: AsyncSession, table: str) -> bool:
    """Whether the application role may update and delete the table's rows at all: a ledger
    (`usage_events`) is insert-only, which refuses more than row-level security does."""
    allowed = await session.scalar(
        text(
            "SELECT has_table_privilege(:table, 'UPDATE') AND has_table_privilege(:table, 'DELETE')"
        ),
        {"table": table},
    )
    return bool(allowed)


async def test_update_moving_a_row_to_another_organization_is_refused(
    session: AsyncSession, two_tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = two_tenants
    await set_tenant(session, a.org.id)
    for table, _, _ in await tenant_tables(session):
        statement = text(
            f"UPDATE {table} SET organization_id = CAST(:other AS uuid) "
            f"WHERE id = (SELECT id FROM {table} LIMIT 1)"
        )
        refusal = "row-level security" if await writable(session, table) else "permission denied"
        with pytest.raises(DBAPIError, match=refusal):
            async with session.begin_nested():
                await session.execute(statement, {"other": b.org.id})


async def test_update_and_delete_cannot_reach_another_organizations_rows(
    session: AsyncSession, two_tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = two_tenants
    await set_tenant(session, a.org.id)
    for table, _, _ in await tenant_tables(session):
        if not await writable(session, table):
            for statement in (f"UPDATE {table} SET updated_at = now()", f"DELETE FROM {table}"):
                with pytest.raises(DBAPIError, match="permission denied"):
                    async with session.begin_nested():
                        await session.execute(text(statement))
            continue
        updated = await session.execute(
            text(f"UPDATE {table} SET updated_at = now() WHERE organization_id = :other"),
            {"other": b.org.id},
        )
        deleted = await session.execute(
            text(f"DELETE FROM {table} WHERE organization_id = :other"), {"other": b.org.id}
        )
        assert updated.rowcount == deleted.rowcount == 0, table  # type: ignore[attr-defined]
    await set_tenant(session, b.org.id)
    assert await session.scalar(text("SELECT count(*) FROM conversations")) == 1


async def test_a_row_cannot_point_at_another_organizations_row(
    session: AsyncSession, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """The composite foreign keys carry organization_id: even a row written under the right
    tenant cannot reference another tenant's conversation."""
    a, b = two_tenants
    await set_tenant(session, a.org.id)
    with pytest.raises(DBAPIError, match="foreign key"):
        async with session.begin_nested():
            await session.execute(
                text(
                    "INSERT INTO messages (organization_id, conversation_id, role) "
                    "VALUES (:org, :conversation, 'user')"
                ),
                {"org": a.org.id, "conversation": b.conversation.id},
            )


async def test_agents_show_own_platform_and_public_but_not_others_private(
    session: AsyncSession,
) -> None:
    a, b = await make_org(session), await make_org(session)
    await set_tenant(session, b.id)
    b_private = await make_agent(session, b, AgentVisibility.private)
    b_public = await make_agent(session, b, AgentVisibility.public)
    await set_tenant(session, a.id)
    a_private = await make_agent(session, a, AgentVisibility.private)

    visible = set((await session.execute(text("SELECT id FROM agents"))).scalars().all())
    assert a_private.id in visible
    assert b_public.id in visible
    assert b_private.id not in visible

    updated = await session.execute(
        text("UPDATE agents SET name = 'taken' WHERE id = :id"), {"id": b_public.id}
    )
    assert updated.rowcount == 0  # type: ignore[attr-defined]
    for owner in (b.id, None):
        with pytest.raises(DBAPIError, match="row-level security"):
            async with session.begin_nested():
                session.add(
                    Agent(owner_organization_id=owner, slug=f"x-{uuid.uuid4().hex[:8]}", name="x")
                )
                await session.flush()


async def test_a_user_reads_their_own_memberships_in_other_organizations_only(
    session: AsyncSession, two_tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = two_tenants
    await set_tenant(session, b.org.id)
    session.add(Membership(organization_id=b.org.id, user_id=a.user.id))
    await session.flush()

    await set_tenant(session, a.org.id, a.user.id)
    memberships = (
        await session.execute(text("SELECT organization_id, user_id FROM memberships"))
    ).all()
    assert {(row.organization_id, row.user_id) for row in memberships} == {
        (a.org.id, a.user.id),
        (b.org.id, a.user.id),
    }
    updated = await session.execute(
        text("UPDATE memberships SET role = 'admin' WHERE organization_id = :b"), {"b": b.org.id}
    )
    assert updated.rowcount == 0  # type: ignore[attr-defined]
