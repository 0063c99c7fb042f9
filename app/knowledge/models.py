"""Chunks of knowledge sources and conversation files, with their vectors.

Several embedding models in one table: the `embedding` column is a dimensionless `vector`,
each row names its `embedding_model` and `dimensions`, and every model gets its own partial
HNSW index over `embedding::vector(N)` restricted to its rows (`hnsw_index`). Why not a
table per model, or one fixed width: an agent may use its own model, and queries stay one
table with one tenant filter; the partial index keeps each model's graph separate, so a search
never compares vectors from different spaces, and adding a model is one migration that adds
one index (no table copy). Searches must use the same cast and `embedding_model = ...`
predicate so the planner picks the model's index.
"""

import uuid
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    cast,
    literal,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, TenantMixin, tenant_reference

# Every embedding model the schema indexes, with its width. A new model needs a migration that
# creates its index (the HNSW index is what makes its search fast).
EMBEDDING_MODELS: dict[str, int] = {
    "all-MiniLM-L6-v2": 384,
    "text-embedding-3-small": 1536,
    # The fallback of installs without the local model (app/knowledge/embedders.py).
    "feature-hashing-384": 384,
}


class Embedding(TenantMixin, Base):
    __tablename__ = "embeddings"
    __table_args__ = (
        tenant_reference("knowledge_source_id", "agent_knowledge_sources"),
        tenant_reference("file_id", "files"),
        tenant_reference("conversation_id", "conversations"),
        Index(None, "organization_id", "agent_id"),
        Index(None, "organization_id", "knowledge_source_id", "chunk_index"),
        Index(None, "organization_id", "file_id", "chunk_index"),
        Index(None, "organization_id", "conversation_id"),
        Index(None, "agent_id"),
        Index(None, "content_tsv", postgresql_using="gin"),
        CheckConstraint(
            "num_nonnulls(knowledge_source_id, file_id) = 1", name="exactly_one_source"
        ),
        CheckConstraint(
            "knowledge_source_id IS NULL OR agent_id IS NOT NULL", name="knowledge_has_agent"
        ),
        CheckConstraint(
            "file_id IS NULL OR conversation_id IS NOT NULL", name="file_has_conversation"
        ),
        CheckConstraint("vector_dims(embedding) = dimensions", name="dimensions_match"),
        CheckConstraint("chunk_index >= 0", name="chunk_index_not_negative"),
    )

    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    knowledge_source_id: Mapped[uuid.UUID | None]
    file_id: Mapped[uuid.UUID | None]
    conversation_id: Mapped[uuid.UUID | None]
    chunk_index: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector())
    embedding_model: Mapped[str] = mapped_column(Text)
    dimensions: Mapped[int] = mapped_column(SmallInteger)
    # Citation data: page, heading, character offsets.
    chunk_metadata: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, default=dict, server_default="{}"
    )
    content_tsv: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english', content)", persisted=True)
    )


def hnsw_index(model: str, dimensions: int) -> Index:
    """The model's own HNSW graph (cosine) over its rows only."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in model.lower())
    vector = cast(Embedding.embedding, Vector(dimensions)).label(f"embedding_{dimensions}")
    return Index(
        f"ix_embeddings_hnsw_{slug}",
        vector,
        postgresql_using="hnsw",
        postgresql_ops={vector.name: "vector_cosine_ops"},
        postgresql_where=Embedding.embedding_model == literal(model),
    )


for _model, _dimensions in EMBEDDING_MODELS.items():
    hnsw_index(_model, _dimensions)
