"""The rate limits as dependencies, one per kind of request: a route lists its limit in its
signature after the principal (`limit: RunRateLimitDep`). `async`, like every dependency:
a plain `def` would run in FastAPI's thread pool."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from app.auth.identity import OrganizationPrincipal
from app.auth.principal import OrganizationPrincipalDep
from app.limits import service
from app.limits.service import RateLimitKind


def _limit(*kinds: RateLimitKind) -> Callable[[Request, OrganizationPrincipal], Awaitable[None]]:
    """A dependency counting one request against each kind's limits, in one statement."""

    async def limit(request: Request, principal: OrganizationPrincipalDep) -> None:
        state = request.app.state
        await service.enforce(state.database, state.settings, principal, *kinds)

    return limit


limit_runs = _limit(RateLimitKind.runs)
limit_uploads = _limit(RateLimitKind.uploads)
limit_ingestions = _limit(RateLimitKind.ingestions)
# A knowledge file is an upload and an ingestion: both limits.
limit_knowledge_files = _limit(RateLimitKind.uploads, RateLimitKind.ingestions)
limit_searches = _limit(RateLimitKind.searches)

RunRateLimitDep = Annotated[None, Depends(limit_runs)]
UploadRateLimitDep = Annotated[None, Depends(limit_uploads)]
IngestionRateLimitDep = Annotated[None, Depends(limit_ingestions)]
KnowledgeFileRateLimitDep = Annotated[None, Depends(limit_knowledge_files)]
SearchRateLimitDep = Annotated[None, Depends(limit_searches)]
