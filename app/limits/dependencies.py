"""The rate limits as dependencies, one per kind of request: a route lists its limit in its
signature after the principal (`limit: RunRateLimitDep`). `async`, like every dependency:
a plain `def` would run in FastAPI's thread pool."""

from typing import Annotated

from fastapi import Depends, Request

from app.auth.principal import OrganizationPrincipalDep
from app.limits import service
from app.limits.service import RateLimitKind


async def limit_runs(request: Request, principal: OrganizationPrincipalDep) -> None:
    state = request.app.state
    await service.enforce(state.database, state.settings, principal, RateLimitKind.runs)


async def limit_uploads(request: Request, principal: OrganizationPrincipalDep) -> None:
    state = request.app.state
    await service.enforce(state.database, state.settings, principal, RateLimitKind.uploads)


async def limit_ingestions(request: Request, principal: OrganizationPrincipalDep) -> None:
    state = request.app.state
    await service.enforce(state.database, state.settings, principal, RateLimitKind.ingestions)


async def limit_knowledge_files(request: Request, principal: OrganizationPrincipalDep) -> None:
    """A knowledge file is an upload and an ingestion: both limits, in one statement."""
    state = request.app.state
    await service.enforce(
        state.database,
        state.settings,
        principal,
        RateLimitKind.uploads,
        RateLimitKind.ingestions,
    )


async def limit_searches(request: Request, principal: OrganizationPrincipalDep) -> None:
    state = request.app.state
    await service.enforce(state.database, state.settings, principal, RateLimitKind.searches)


RunRateLimitDep = Annotated[None, Depends(limit_runs)]
UploadRateLimitDep = Annotated[None, Depends(limit_uploads)]
IngestionRateLimitDep = Annotated[None, Depends(limit_ingestions)]
KnowledgeFileRateLimitDep = Annotated[None, Depends(limit_knowledge_files)]
SearchRateLimitDep = Annotated[None, Depends(limit_searches)]
