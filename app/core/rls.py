"""Row-level security: the SQL that migrations apply to tenant tables.

Policies read the tenant from `app.org_id` (and `app.user_id`), which `app.core.db.set_tenant`
sets at the start of each transaction. Unset, they are '' and match no row. FORCE makes the
policies apply to the table owner too, so even a service misconfigured to connect as the owner
stays inside one tenant; maintenance that must span tenants (migrations, `ajc seed`) runs as
an owner role with BYPASSRLS, or sets the tenant per organization like the jobs do.
"""

CURRENT_ORGANIZATION = "NULLIF(current_setting('app.org_id', true), '')::uuid"
CURRENT_USER_ID = "NULLIF(current_setting('app.user_id', true), '')::uuid"


def force_row_level_security(table: str) -> list[str]:
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
    ]


def tenant_isolation(table: str) -> list[str]:
    """The policy of every table with `organization_id`: read and write one tenant only.

    One place repeats it by hand: `knowledge_word_matches` (migration 7d2c41e8b6f0), a
    SECURITY DEFINER function that filters `embeddings` on `app.org_id` itself so full-text
    search can use its index. A change to this policy must change that function too."""
    return [
        *force_row_level_security(table),
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING (organization_id = {CURRENT_ORGANIZATION}) "
        f"WITH CHECK (organization_id = {CURRENT_ORGANIZATION})",
    ]


def grant_app_access(app_role: str) -> list[str]:
    """The application role reads and writes rows, never the schema; it reads the migration
    version (for /readyz) but cannot change it."""
    role = '"' + app_role.replace('"', '""') + '"'
    return [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
    ]


def owner_or_platform(table: str) -> list[str]:
    """The policy of tables whose rows belong to an organization or, with no owner, to the
    platform (`owner_organization_id`: secrets, their data keys, the model registry): an
    organization reads its own rows and the platform's, and writes only its own. The
    platform's are written by the owner role (BYPASSRLS), never by a request."""
    owner_is_current = f"owner_organization_id = {CURRENT_ORGANIZATION}"
    return [
        *force_row_level_security(table),
        f"CREATE POLICY owner_or_platform_read ON {table} FOR SELECT "
        f"USING (owner_organization_id IS NULL OR {owner_is_current})",
        f"CREATE POLICY owner_insert ON {table} FOR INSERT WITH CHECK ({owner_is_current})",
        f"CREATE POLICY owner_update ON {table} FOR UPDATE "
        f"USING ({owner_is_current}) WITH CHECK ({owner_is_current})",
        f"CREATE POLICY owner_delete ON {table} FOR DELETE USING ({owner_is_current})",
    ]


def grant_table_access(
    table: str, app_role: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE"
) -> str:
    """What `grant_app_access` gave the baseline's tables, for a table made later (or less:
    a ledger's `SELECT, INSERT`)."""
    role = '"' + app_role.replace('"', '""') + '"'
    return f"GRANT {privileges} ON {table} TO {role}"
