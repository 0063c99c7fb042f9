from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from app.core.db import TransactionalRoute
from app.observability import service

router = APIRouter(tags=["observability"], route_class=TransactionalRoute)


# Not in the OpenAPI document: it is the operator's scraper's endpoint, not the tenants' API
# (no Clerk session, no organization, Prometheus' text format rather than JSON), and the
# document is what front ends generate their clients from and what the contract tests fuzz
# and check operation by operation (tests/contract).
@router.get("/metrics", include_in_schema=False)
async def read_metrics(request: Request) -> Response:
    """Prometheus metrics of every process of the service (the README's Metrics and tracing)."""
    body = await service.scrape(
        request.app.state.settings,
        request.app.state.database,
        request.headers.get("authorization"),
        request.client.host if request.client else None,
    )
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
