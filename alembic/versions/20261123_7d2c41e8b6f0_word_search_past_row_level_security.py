"""Full-text search of chunks that can use the GIN index under row-level security.

PostgreSQL evaluates a query's own conditions after the policies' unless their functions are
LEAKPROOF, and `@@` (ts_match_vq) is not: for the application role, a word search reads every
row of the tenant and filters them (bench/bench_retrieval.py: a sequential scan). This
function runs as its owner, which bypasses row-level security, and filters by the tenant of
the calling transaction itself (`app.org_id`, exactly as the policy does; no tenant set, no
rows), so the planner may start from the GIN index.

Revision ID: 7d2c41e8b6f0
Revises: 5b1e0f3c9a27
Create Date: 2026-11-23 18:30:00
"""

from collections.abc import Sequence

from alembic import context, op

revision: str = "7d2c41e8b6f0"
down_revision: str | None = "5b1e0f3c9a27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    app_role = '"' + context.config.attributes["app_role"].replace('"', '""') + '"'
    op.execute(
        """
        CREATE FUNCTION knowledge_word_matches(
            p_agent_id uuid, p_conversation_id uuid, p_model text, p_query tsquery, p_limit int
        ) RETURNS TABLE (
            id uuid, content text, metadata jsonb, knowledge_source_id uuid, file_id uuid,
            rank bigint
        )
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT e.id, e.content, e.metadata, e.knowledge_source_id, e.file_id,
                row_number() OVER (ORDER BY ts_rank_cd(e.content_tsv, p_query) DESC, e.id)
            FROM embeddings e
            WHERE e.organization_id = NULLIF(current_setting('app.org_id', true), '')::uuid
                AND e.embedding_model = p_model
                AND ((e.agent_id = p_agent_id AND e.knowledge_source_id IS NOT NULL)
                    OR (e.conversation_id = p_conversation_id AND e.file_id IS NOT NULL))
                AND e.content_tsv @@ p_query
            ORDER BY ts_rank_cd(e.content_tsv, p_query) DESC, e.id
            LIMIT p_limit
        $$
        """
    )
    op.execute(
        "REVOKE ALL ON FUNCTION knowledge_word_matches(uuid, uuid, text, tsquery, int) FROM PUBLIC"
    )
    op.execute(
        "GRANT EXECUTE ON FUNCTION knowledge_word_matches(uuid, uuid, text, tsquery, int) "
        f"TO {app_role}"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION knowledge_word_matches(uuid, uuid, text, tsquery, int)")
