"""The HNSW index of the feature-hashing embedder: the fallback of installs without the
local model (app/knowledge/embedders.py), whose vectors live in a space of their own.

Revision ID: 5b1e0f3c9a27
Revises: c0c16e975f72
Create Date: 2026-11-23 17:55:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5b1e0f3c9a27"
down_revision: str | None = "c0c16e975f72"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_embeddings_hnsw_feature_hashing_384 ON embeddings USING hnsw "
        "((embedding::vector(384)) vector_cosine_ops) "
        "WHERE embedding_model = 'feature-hashing-384'"
    )


def downgrade() -> None:
    op.drop_index("ix_embeddings_hnsw_feature_hashing_384", table_name="embeddings")
