from fastapi import APIRouter, Request, Response

from app.core.db import TransactionalRoute
from app.health import service
from app.health.schemas import Liveness, Readiness

router = APIRouter(tags=["health"], route_class=TransactionalRoute)


@router.get("/healthz")
async def liveness() -> Liveness:
    """The process is up. Never touches the database, so a database outage does not get the
    process restarted."""
    return Liveness()


@router.get("/readyz", responses={503: {"model": Readiness}})
async def readiness(request: Request, response: Response) -> Readiness:
    """The database is reachable and migrated to this release's head; 503 otherwise."""
    readiness = await service.check_readiness(
        request.app.state.engine, request.app.state.head_revision
    )
    if not readiness.ready:
        response.status_code = 503
    return readiness
