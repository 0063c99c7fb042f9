"""Knowledge: the sources an organization gives an agent, their ingestion into chunks with
vectors, and the one retrieval function that answers from them.

Sources belong to the organization that added them, even on a platform agent. Admins add
(raw text, a URL fetched once at ingestion, or an uploaded file), re-ingest and delete them;
members see them. Adding or re-ingesting queues an ingestion job in the same transaction
(`defer_in_transaction`): the job exists exactly when the source does.

Ingestion (`ingest_source`, `ingest_file`, run by the job worker): read, parse into sections,
chunk by tokens with overlap, embed in batches of EMBED_BATCH, then replace the owner's
chunks in one transaction, so a search sees the old chunks or the new ones, never a mix. A
source's status shows where it is (pending, processing, ready, failed with the reason).
Content that cannot be read (a corrupt PDF, an unsupported type, a URL the egress guard
refuses or that answers too much) fails at once; an embedding provider or a URL's server that
is down fails the attempt and the job is retried.
"""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents import service as agents_service
from app.agents.models import (
    Agent,
    AgentKnowledgeSource,
    KnowledgeSourceKind,
    KnowledgeSourceStatus,
)
from app.auth.identity import OrganizationPrincipal
from app.budgets import service as budgets_service
from app.conversations import service as conversations_service
from app.core.db import driver_connection, set_tenant, unit_of_work
from app.core.egress import EgressError, EgressGuard, EgressRefused, ResponseTooLarge
from app.core.errors import NotFound, ServiceUnavailable
from app.core.settings import Settings
from app.files import media_types
from app.files import service as files_service
from app.files import storage as file_storage
from app.files.storage import Storage
from app.jobs.outbox import defer_in_transaction
from app.knowledge import chunking, parsing, repository
from app.knowledge.embedders import Embedded, Embedder, Embedders, EmbeddingError
from app.knowledge.repository import ChunkOwner, ChunkRow, Scope
from app.knowledge.schemas import (
    Citation,
    SearchHit,
    SearchResult,
    TextSourceCreate,
    UrlSourceCreate,
)
from app.observability import metrics
from app.usage.models import UsagePurpose
from app.usage.service import Attribution, ModelCall

logger = logging.getLogger(__name__)

EMBED_BATCH = 64
INGEST_SOURCE = "knowledge:ingest_source"
URL_TIMEOUT_SECONDS = 30.0


class KnowledgeSourceNotFound(NotFound):
    problem = "knowledge-source-not-found"
    title = "Knowledge source not found"


class EmbeddingUnavailable(ServiceUnavailable):
    problem = "embedding-unavailable"
    title = "Embedding provider unavailable"


class Unreadable(Exception):
    """Content that no retry will make readable: the source fails with this reason."""


# Sources ----------------------------------------------------------------------------------


async def list_sources(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID
) -> list[AgentKnowledgeSource]:
    await agents_service.get_usable_agent(session, principal, agent_id)
    return await repository.list_sources(session, principal.organization_id, agent_id)


async def get_source(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    source_id: uuid.UUID,
) -> AgentKnowledgeSource:
    await agents_service.get_usable_agent(session, principal, agent_id)
    source = await repository.get_source(session, principal.organization_id, source_id)
    if source is None or source.agent_id != agent_id:
        raise KnowledgeSourceNotFound()
    return source


async def add_source(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    data: TextSourceCreate | UrlSourceCreate,
) -> AgentKnowledgeSource:
    await agents_service.get_usable_agent(session, principal, agent_id)
    source = AgentKnowledgeSource(
        organization_id=principal.organization_id,
        agent_id=agent_id,
        name=data.name,
        created_by_user_id=principal.user_id,
    )
    if isinstance(data, TextSourceCreate):
        source.kind = KnowledgeSourceKind.text
        source.text_content = data.text
        source.media_type = media_types.TEXT
        source.size_bytes = len(data.text.encode())
    else:
        source.kind = KnowledgeSourceKind.url
        source.url = str(data.url)
    await repository.insert_source(session, source)
    await _queue_ingestion(session, source)
    return source


async def add_file_source(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    upload: BinaryIO,
    name: str,
    storage: Storage,
    max_bytes: int,
) -> AgentKnowledgeSource:
    """An uploaded file: its bytes under `{org_id}/knowledge/{agent_id}/`, in place once the
    source commits (app/files/storage.py)."""
    await agents_service.get_usable_agent(session, principal, agent_id)
    source = await store_file_source(
        session,
        principal.organization_id,
        agent_id,
        upload,
        name,
        storage,
        max_bytes,
        created_by=principal.user_id,
    )
    await _queue_ingestion(session, source)
    return source


async def store_file_source(
    session: AsyncSession,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID,
    upload: BinaryIO,
    name: str,
    storage: Storage,
    max_bytes: int,
    created_by: uuid.UUID | None = None,
) -> AgentKnowledgeSource:
    """The source's row and bytes, not yet ingested (`ajc ingest` ingests it at once)."""
    received, media_type = await files_service.receive(
        upload, name, storage, max_bytes, media_types.READABLE
    )
    source_id = uuid.uuid4()
    source = AgentKnowledgeSource(
        id=source_id,
        organization_id=organization_id,
        agent_id=agent_id,
        kind=KnowledgeSourceKind.file,
        name=files_service.clean_name(name),
        storage_path=(
            f"{file_storage.knowledge_folder(organization_id, agent_id)}/"
            f"{source_id}{media_types.EXTENSIONS[media_type]}"
        ),
        media_type=media_type,
        size_bytes=received.size_bytes,
        sha256=received.sha256,
        created_by_user_id=created_by,
    )
    await repository.insert_source(session, source)
    await file_storage.keep_after_commit(
        session, storage, received, source.storage_path or "", media_type, source.name
    )
    return source


async def reingest_source(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    source_id: uuid.UUID,
) -> AgentKnowledgeSource:
    source = await get_source(session, principal, agent_id, source_id)
    source.status = KnowledgeSourceStatus.pending
    source.error = None
    await session.flush()
    await _queue_ingestion(session, source)
    return source


async def delete_source(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    source_id: uuid.UUID,
    storage: Storage,
) -> None:
    """The source and its chunks now; its bytes once that commits."""
    source = await get_source(session, principal, agent_id, source_id)
    await repository.delete_source(session, source.organization_id, source.id)
    if source.storage_path:
        file_storage.delete_after_commit(session, storage, source.storage_path)


async def _queue_ingestion(session: AsyncSession, source: AgentKnowledgeSource) -> None:
    await defer_in_transaction(
        session,
        INGEST_SOURCE,
        {"organization_id": str(source.organization_id), "source_id": str(source.id)},
        lock=f"knowledge-source-{source.id}",
    )


# Ingestion (jobs) -------------------------------------------------------------------------


async def ingest_source(
    sessionmaker: async_sessionmaker[AsyncSession],
    embedders: Embedders,
    settings: Settings,
    storage: Storage,
    organization_id: uuid.UUID,
    source_id: uuid.UUID,
    progress: Callable[[int, int], None] | None = None,
) -> int | None:
    """Ingest one source; its chunk count, or None if it is gone or failed for good.
    Raises (for the job to be retried) when the embedding provider fails."""
    async with sessionmaker() as session, unit_of_work(session):
        await set_tenant(session, organization_id)
        source = await repository.get_source(session, organization_id, source_id, for_update=True)
        if source is None:
            return None  # deleted since it was queued
        agent = await agents_service.get_agent_of_organization(
            session, organization_id, source.agent_id
        )
        if agent is None:
            return None  # no longer granted: nothing may be learnt for it
        await repository.set_source_status(
            session, organization_id, source_id, KnowledgeSourceStatus.processing
        )
        kind, text, path, url, media_type = (
            source.kind,
            source.text_content,
            source.storage_path,
            source.url,
            source.media_type,
        )
        model = agent.embedding_model
    owner = ChunkOwner(organization_id, agent.id, knowledge_source_id=source_id)

    async def fail(reason: str) -> None:
        async with sessionmaker() as session, unit_of_work(session):
            await set_tenant(session, organization_id)
            await repository.set_source_status(
                session, organization_id, source_id, KnowledgeSourceStatus.failed, reason
            )

    try:
        if kind == KnowledgeSourceKind.text:
            data, media_type = (text or "").encode(), media_types.TEXT
        elif kind == KnowledgeSourceKind.url:
            data, media_type = await _fetch(url or "", settings)
        else:
            data = await storage.read_bytes(path or "")
        rows, stored_model, calls = await _embed_document(
            data, media_type or "", embedders, model, progress
        )
        async with sessionmaker() as session, unit_of_work(session):
            await set_tenant(session, organization_id)
            # The calls were made (and charged) whatever becomes of the source.
            await budgets_service.account(
                await driver_connection(session),
                Attribution(organization_id, None, agent.id),
                calls,
            )
            if (
                await repository.get_source(session, organization_id, source_id, for_update=True)
                is None
            ):
                return None
            await repository.replace_chunks(session, owner, stored_model, rows)
            await repository.set_source_status(
                session,
                organization_id,
                source_id,
                KnowledgeSourceStatus.ready,
                chunk_count=len(rows),
            )
    except Unreadable as exc:
        await fail(str(exc))
        return None
    except (EmbeddingError, EgressError, OSError) as exc:
        await fail(f"{exc} (will retry)")
        raise
    except Exception:
        # Anything else (the database refusing the chunks...) must not leave the source
        # `processing` for good; the details stay in the log, not in what the admin reads.
        logger.exception("ingestion failed", extra={"source_id": str(source_id)})
        await fail("Ingestion failed on our side (will retry).")
        raise
    return len(rows)


async def ingest_file(
    sessionmaker: async_sessionmaker[AsyncSession],
    embedders: Embedders,
    storage: Storage,
    organization_id: uuid.UUID,
    file_id: uuid.UUID,
) -> int | None:
    """Chunks of a conversation file, searchable in that conversation only."""
    async with sessionmaker() as session:
        await set_tenant(session, organization_id)
        found = await files_service.get_with_conversation(session, organization_id, file_id)
        if found is None:
            return None  # deleted since it was queued
        stored, conversation = found
        agent = await agents_service.get_agent_of_organization(
            session, organization_id, conversation.agent_id
        )
        if agent is None:
            return None
        model = agent.embedding_model
    try:
        data = await storage.read_bytes(stored.storage_path)
        rows, stored_model, calls = await _embed_document(
            data, stored.media_type, embedders, model, None
        )
    except Unreadable as exc:
        logger.warning("file not ingested", extra={"file_id": str(file_id), "reason": str(exc)})
        return None
    owner = ChunkOwner(
        organization_id, agent.id, file_id=stored.id, conversation_id=conversation.id
    )
    async with sessionmaker() as session, unit_of_work(session):
        await set_tenant(session, organization_id)
        await budgets_service.account(
            await driver_connection(session),
            Attribution(organization_id, stored.user_id, agent.id, conversation.id),
            calls,
        )
        if await files_service.get_with_conversation(session, organization_id, file_id) is None:
            return None
        await repository.replace_chunks(session, owner, stored_model, rows)
    return len(rows)


async def _embed_document(
    data: bytes,
    media_type: str,
    embedders: Embedders,
    model: str,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[ChunkRow], str, list[ModelCall]]:
    """The document's chunks with their vectors, the model that made them, and its calls
    (for the usage ledger, in the caller's transaction with the chunks)."""
    try:
        sections = await asyncio.to_thread(parsing.parse, data, media_type)
    except parsing.ParseError as exc:
        raise Unreadable(str(exc)) from exc
    chunks = await asyncio.to_thread(chunking.chunk, sections)
    embedder = embedders.for_model(model)
    vectors: list[list[float]] = []
    calls: list[ModelCall] = []
    for start in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[start : start + EMBED_BATCH]
        embedded, call = await embed(
            embedder, [chunk.content for chunk in batch], UsagePurpose.embedding_ingest
        )
        vectors += embedded.vectors
        calls.append(call)
        metrics.CHUNKS_EMBEDDED.inc(len(batch))
        if progress is not None:
            progress(len(vectors), len(chunks))
    rows = [
        ChunkRow(
            index=chunk.index,
            content=chunk.content,
            vector=vector,
            metadata={
                "page": chunk.page,
                "heading": chunk.heading,
                "start": chunk.start,
                "end": chunk.end,
            },
        )
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]
    return rows, embedder.model, calls


async def embed(
    embedder: Embedder, texts: Sequence[str], purpose: UsagePurpose
) -> tuple[Embedded, ModelCall]:
    """The texts' vectors, and the call as the usage ledger records it."""
    occurred_at, started = datetime.now(UTC), time.monotonic()
    embedded = await embedder.embed(texts)
    return embedded, ModelCall(
        request_id=f"embedding:{uuid.uuid4()}",
        purpose=purpose,
        occurred_at=occurred_at,
        model_id=None,  # embedding models are not the registry's yet
        model_name=embedder.model,
        input_tokens=embedded.tokens,
        cached_input_tokens=0,
        output_tokens=0,
        estimated=embedded.estimated,
        latency_ms=int((time.monotonic() - started) * 1000),
    )


async def _fetch(url: str, settings: Settings) -> tuple[bytes, str]:
    """The URL's bytes and their detected type, fetched once through the egress guard: an
    admin must not reach the service's own infrastructure through a source."""
    try:
        fetched = await EgressGuard.from_settings(settings).fetch(
            url, max_bytes=settings.file_max_bytes, deadline_seconds=URL_TIMEOUT_SECONDS
        )
    except (EgressRefused, ResponseTooLarge) as exc:
        raise Unreadable(str(exc)) from exc
    if fetched.status_code != 200:
        raise Unreadable(f"{url} answered {fetched.status_code}.")
    data = fetched.content
    name = urlsplit(fetched.url).path.rsplit("/", 1)[-1] or "page.html"
    try:
        media_type = media_types.detect(data[: file_storage.HEAD_BYTES], name, lambda: data)
    except media_types.Unsupported as exc:
        raise Unreadable(f"{url}: {exc}") from exc
    if media_type not in media_types.READABLE:
        raise Unreadable(f"{url} holds {media_type}, which has no text to learn from.")
    return data, media_type


# Retrieval --------------------------------------------------------------------------------


async def search(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    query: str,
    embedders: Embedders,
    conversation_id: uuid.UUID | None = None,
    top_k: int | None = None,
) -> SearchResult:
    """`POST /agents/{id}/search`: what the agent would retrieve for `query`."""
    agent = await agents_service.get_usable_agent(session, principal, agent_id)
    if conversation_id is not None:
        await conversations_service.get_readable_conversation(session, principal, conversation_id)
    scope = Scope(principal.organization_id, agent.id, conversation_id)
    return await retrieve(session, scope, agent, query, embedders, principal.user_id, top_k)


async def retrieve(
    session: AsyncSession,
    scope: Scope,
    agent: Agent,
    query: str,
    embedders: Embedders,
    user_id: uuid.UUID | None,
    top_k: int | None = None,
    run_id: str | None = None,
) -> SearchResult:
    """The one retrieval function (the search route and the agent's search tool): hybrid
    search in the scope, top-k and minimum similarity from the agent's retrieval settings.
    The query's embedding is a usage event of `user_id` (and the run's), in the session's
    transaction."""
    settings = agent.retrieval_settings or {}
    try:
        embedder = embedders.for_model(agent.embedding_model)
        embedded, call = await embed(embedder, [query], UsagePurpose.embedding_search)
    except EmbeddingError as exc:
        raise EmbeddingUnavailable(str(exc)) from exc
    [vector] = embedded.vectors
    attribution = Attribution(
        scope.organization_id, user_id, scope.agent_id, scope.conversation_id, run_id
    )
    await budgets_service.account(await driver_connection(session), attribution, [call])
    rows = await repository.search(
        session,
        scope,
        embedder.model,
        embedder.dimensions,
        vector,
        query,
        top_k or int(settings.get("top_k", 5)),
        float(settings.get("min_score", 0.0)),
    )
    return SearchResult(embedding_model=embedder.model, hits=[_hit(row) for row in rows])


def _hit(row: dict[str, Any]) -> SearchHit:
    metadata = json.loads(row["metadata"]) if isinstance(row["metadata"], str) else row["metadata"]
    from_file = row["file_id"] is not None
    return SearchHit(
        content=row["content"],
        score=float(row["score"]),
        similarity=None if row["similarity"] is None else float(row["similarity"]),
        citation=Citation(
            chunk_id=row["id"],
            source_kind="file" if from_file else "knowledge_source",
            source_id=row["file_id"] if from_file else row["knowledge_source_id"],
            source_name=row["source_name"] or "",
            file_id=row["file_id"],
            page=metadata.get("page"),
            heading=metadata.get("heading"),
            start=metadata.get("start"),
            end=metadata.get("end"),
        ),
    )
