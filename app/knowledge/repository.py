"""Knowledge sources and chunks. The chunk queries go to the driver (bulk inserts with
`unnest`, the hybrid search in one statement): they are the hot paths of ingestion and of
every answer. Row-level security holds for them as for every query of the session."""

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentKnowledgeSource, KnowledgeSourceStatus
from app.core.db import driver_connection
from app.knowledge.models import EMBEDDING_MODELS

INSERT_BATCH_ROWS = 500
_WORD = re.compile(r"\w+")
RRF_K = 60  # reciprocal-rank fusion's constant, as in its paper


async def insert_source(session: AsyncSession, source: AgentKnowledgeSource) -> None:
    session.add(source)
    await session.flush()


async def list_sources(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> list[AgentKnowledgeSource]:
    sources = await session.scalars(
        select(AgentKnowledgeSource)
        .where(
            AgentKnowledgeSource.organization_id == organization_id,
            AgentKnowledgeSource.agent_id == agent_id,
        )
        .order_by(AgentKnowledgeSource.created_at, AgentKnowledgeSource.id)
    )
    return list(sources)


async def get_source(
    session: AsyncSession,
    organization_id: uuid.UUID,
    source_id: uuid.UUID,
    for_update: bool = False,
) -> AgentKnowledgeSource | None:
    statement = select(AgentKnowledgeSource).where(
        AgentKnowledgeSource.organization_id == organization_id,
        AgentKnowledgeSource.id == source_id,
    )
    if for_update:
        statement = statement.with_for_update()
    source: AgentKnowledgeSource | None = await session.scalar(statement)
    return source


async def delete_source(
    session: AsyncSession, organization_id: uuid.UUID, source_id: uuid.UUID
) -> None:
    await session.execute(
        delete(AgentKnowledgeSource).where(
            AgentKnowledgeSource.organization_id == organization_id,
            AgentKnowledgeSource.id == source_id,
        )
    )


async def set_source_status(
    session: AsyncSession,
    organization_id: uuid.UUID,
    source_id: uuid.UUID,
    status: KnowledgeSourceStatus,
    error: str | None = None,
    chunk_count: int | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "error": error}
    if chunk_count is not None:
        values |= {"chunk_count": chunk_count, "ingested_at": datetime.now(UTC)}
    await session.execute(
        update(AgentKnowledgeSource)
        .where(
            AgentKnowledgeSource.organization_id == organization_id,
            AgentKnowledgeSource.id == source_id,
        )
        .values(**values)
    )


@dataclass(frozen=True)
class ChunkOwner:
    """Whose chunks: a knowledge source of an agent, or a file of a conversation."""

    organization_id: uuid.UUID
    agent_id: uuid.UUID | None
    knowledge_source_id: uuid.UUID | None = None
    file_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ChunkRow:
    index: int
    content: str
    vector: list[float]
    metadata: dict[str, Any]


async def replace_chunks(
    session: AsyncSession, owner: ChunkOwner, model: str, rows: list[ChunkRow]
) -> None:
    """The owner's chunks become `rows`, in the session's transaction: readers see the old
    set or the new one, never a mix."""
    connection = await driver_connection(session)
    await connection.execute(
        "DELETE FROM embeddings WHERE organization_id = $1 "
        "AND knowledge_source_id IS NOT DISTINCT FROM $2 AND file_id IS NOT DISTINCT FROM $3",
        owner.organization_id,
        owner.knowledge_source_id,
        owner.file_id,
    )
    for start in range(0, len(rows), INSERT_BATCH_ROWS):
        batch = rows[start : start + INSERT_BATCH_ROWS]
        await connection.execute(
            """
            INSERT INTO embeddings (organization_id, agent_id, knowledge_source_id, file_id,
                conversation_id, embedding_model, dimensions, chunk_index, content, embedding,
                metadata)
            SELECT $1, $2, $3, $4, $5, $6, $7, chunk.index, chunk.content,
                chunk.vector::vector, chunk.metadata::jsonb
            FROM unnest($8::int[], $9::text[], $10::text[], $11::text[])
                AS chunk(index, content, vector, metadata)
            """,
            owner.organization_id,
            owner.agent_id,
            owner.knowledge_source_id,
            owner.file_id,
            owner.conversation_id,
            model,
            len(batch[0].vector),
            [row.index for row in batch],
            [row.content for row in batch],
            [_vector_literal(row.vector) for row in batch],
            [json.dumps(row.metadata) for row in batch],
        )


def any_of_words(text: str) -> str:
    """A `to_tsquery` that matches any of the text's words (stemmed, stop words dropped by
    the `english` configuration): questions share few of their words with the passage that
    answers them, so requiring all of them (`plainto_tsquery`) would find almost nothing."""
    words = _WORD.findall(text.lower())
    # No words at all (a query of punctuation or emoji): the empty query, which matches
    # nothing; `''` would be a syntax error.
    return " | ".join(f"'{word}'" for word in dict.fromkeys(words))


def _vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(map(repr, vector)) + "]"


@dataclass(frozen=True)
class Scope:
    """What a search may see: an agent's knowledge in one organization, and the files of one
    conversation if given."""

    organization_id: uuid.UUID
    agent_id: uuid.UUID
    conversation_id: uuid.UUID | None


def search_sql(model: str, dimensions: int) -> str:
    """The hybrid search statement for one model (its parameters: see `search`)."""
    vector = f"$1::vector({dimensions})"
    column = f"embedding::vector({dimensions})"
    # The model as a literal, not a parameter: the model's HNSW index is partial (`WHERE
    # embedding_model = '...'`), and a generic plan (prepared statements, after five runs)
    # could not prove a parameter matches it, so it would scan the table instead.
    if EMBEDDING_MODELS.get(model) != dimensions:
        raise ValueError(f"{model} is not an indexed model of {dimensions} dimensions")
    in_scope = (
        f"organization_id = $2 AND embedding_model = '{model}' AND ("
        "(agent_id = $3 AND knowledge_source_id IS NOT NULL) "
        "OR (conversation_id = $4 AND file_id IS NOT NULL))"
    )
    return f"""
        WITH nearest AS MATERIALIZED (
            SELECT id, content, metadata, knowledge_source_id, file_id,
                {column} <=> {vector} AS distance
            FROM embeddings
            WHERE {in_scope}
            ORDER BY {column} <=> {vector}
            LIMIT $5
        ),
        by_meaning AS (
            SELECT *, 1 - distance AS similarity,
                row_number() OVER (ORDER BY distance, id) AS rank
            FROM nearest
            WHERE 1 - distance >= $6
        ),
        by_words AS (
            -- A function of the schema's owner: the GIN index is out of reach of the
            -- application role's queries (migration 7d2c41e8b6f0 says why).
            SELECT * FROM knowledge_word_matches(
                $3, $4, '{model}', to_tsquery('english', $7), $5::int
            )
        ),
        fused AS (
            SELECT coalesce(m.id, w.id) AS id,
                coalesce(m.content, w.content) AS content,
                coalesce(m.metadata, w.metadata) AS metadata,
                coalesce(m.knowledge_source_id, w.knowledge_source_id) AS knowledge_source_id,
                coalesce(m.file_id, w.file_id) AS file_id,
                m.similarity,
                coalesce(1.0 / ({RRF_K} + m.rank), 0) + coalesce(1.0 / ({RRF_K} + w.rank), 0)
                    AS score
            FROM by_meaning m FULL OUTER JOIN by_words w ON m.id = w.id
            ORDER BY score DESC, id
            LIMIT $8
        )
        SELECT fused.*, coalesce(s.name, f.original_name) AS source_name
        FROM fused
        LEFT JOIN agent_knowledge_sources s
            ON s.organization_id = $2 AND s.id = fused.knowledge_source_id
        LEFT JOIN files f ON f.organization_id = $2 AND f.id = fused.file_id
        ORDER BY fused.score DESC, fused.id
        """


async def search(
    session: AsyncSession,
    scope: Scope,
    model: str,
    dimensions: int,
    query_vector: list[float],
    query_text: str,
    top_k: int,
    min_similarity: float,
) -> list[dict[str, Any]]:
    """Hybrid search: nearest chunks by cosine distance (the model's HNSW index, scanned
    iteratively so a filter that keeps few rows still fills the list) and by full-text rank
    (any of the query's words, chunks with more of them first), fused by reciprocal rank."""
    candidates = max(top_k * 4, 40)
    connection = await driver_connection(session)
    # Transaction-local. pgvector 0.8 keeps scanning the graph until `candidates` rows pass
    # the tenant filter (relaxed order: the CTE re-sorts them by distance). Custom plans:
    # whether the HNSW graph or the tenant's btree is faster depends on how many rows the
    # tenant has, which a generic plan (a prepared statement's, after five runs) cannot
    # know; it picked an exact scan of a big tenant's rows (bench/bench_retrieval.py).
    await connection.execute(
        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
        "set_config('hnsw.ef_search', $1, true), "
        "set_config('plan_cache_mode', 'force_custom_plan', true)",
        str(max(candidates, 100)),
    )
    rows = await connection.fetch(
        search_sql(model, dimensions),
        _vector_literal(query_vector),
        scope.organization_id,
        scope.agent_id,
        scope.conversation_id,
        candidates,
        min_similarity,
        any_of_words(query_text),
        top_k,
    )
    return [dict(row) for row in rows]
