import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Form, Request, UploadFile, status

from app.auth.principal import AdminDep, OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute
from app.knowledge import service
from app.knowledge.schemas import KnowledgeSourceRead, SearchRequest, SearchResult, SourceCreate
from app.limits.dependencies import (
    IngestionRateLimitDep,
    KnowledgeFileRateLimitDep,
    SearchRateLimitDep,
)

router = APIRouter(prefix="/agents/{agent_id}", tags=["knowledge"], route_class=TransactionalRoute)


@router.get("/knowledge-sources")
async def list_knowledge_sources(
    agent_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> list[KnowledgeSourceRead]:
    """The organization's sources for the agent, with their ingestion status."""
    sources = await service.list_sources(session, principal, agent_id)
    return [KnowledgeSourceRead.model_validate(source) for source in sources]


@router.post("/knowledge-sources", status_code=status.HTTP_201_CREATED)
async def add_knowledge_source(
    agent_id: uuid.UUID,
    data: Annotated[SourceCreate, Body()],
    session: SessionDep,
    principal: AdminDep,
    rate_limit: IngestionRateLimitDep,
) -> KnowledgeSourceRead:
    """Raw text (`kind: text`) or a URL fetched once at ingestion (`kind: url`); ingestion
    starts in the background (status `pending`, then `processing`, `ready` or `failed`)."""
    source = await service.add_source(session, principal, agent_id, data)
    return KnowledgeSourceRead.model_validate(source)


@router.post("/knowledge-sources/files", status_code=status.HTTP_201_CREATED)
async def upload_knowledge_file(
    agent_id: uuid.UUID,
    file: UploadFile,
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    rate_limit: KnowledgeFileRateLimitDep,
    name: Annotated[str | None, Form(description="Default: the upload's file name.")] = None,
) -> KnowledgeSourceRead:
    """An uploaded document (text, Markdown, HTML, CSV, JSON, PDF, DOCX)."""
    settings = request.app.state.settings
    source = await service.add_file_source(
        session,
        principal,
        agent_id,
        file.file,
        name or file.filename or "file",
        request.app.state.storage,
        settings.file_max_bytes,
    )
    return KnowledgeSourceRead.model_validate(source)


@router.get("/knowledge-sources/{source_id}")
async def read_knowledge_source(
    agent_id: uuid.UUID,
    source_id: uuid.UUID,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
) -> KnowledgeSourceRead:
    source = await service.get_source(session, principal, agent_id, source_id)
    return KnowledgeSourceRead.model_validate(source)


@router.post("/knowledge-sources/{source_id}/ingest", status_code=status.HTTP_202_ACCEPTED)
async def reingest_knowledge_source(
    agent_id: uuid.UUID,
    source_id: uuid.UUID,
    session: SessionDep,
    principal: AdminDep,
    rate_limit: IngestionRateLimitDep,
) -> KnowledgeSourceRead:
    """Ingest again (a URL is fetched again); the new chunks replace the old at once."""
    source = await service.reingest_source(session, principal, agent_id, source_id)
    return KnowledgeSourceRead.model_validate(source)


@router.delete("/knowledge-sources/{source_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_knowledge_source(
    agent_id: uuid.UUID,
    source_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: AdminDep,
) -> None:
    await service.delete_source(session, principal, agent_id, source_id, request.app.state.storage)


@router.post("/search")
async def search_knowledge(
    agent_id: uuid.UUID,
    data: SearchRequest,
    request: Request,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    rate_limit: SearchRateLimitDep,
) -> SearchResult:
    """What the agent retrieves for a query: its knowledge (and the conversation's files if
    `conversation_id` is given), by meaning and by words, with citations."""
    return await service.search(
        session,
        principal,
        agent_id,
        data.query,
        request.app.state.embedders,
        data.conversation_id,
        data.top_k,
    )
