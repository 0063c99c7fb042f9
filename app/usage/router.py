from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.auth.principal import AdminDep, OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute
from app.usage import service
from app.usage.schemas import UsageGroup, UsagePeriod, UsageReport

router = APIRouter(tags=["usage"], route_class=TransactionalRoute)

Start = Annotated[
    date | None,
    Query(description="First day, in the organization's time zone; default 29 days before `end`."),
]
End = Annotated[
    date | None,
    Query(description="Last day, included, in the organization's time zone; default today."),
]
Period = Annotated[UsagePeriod, Query(description="The rows' period.")]


@router.get("/usage")
async def read_usage(
    session: SessionDep,
    principal: AdminDep,
    start: Start = None,
    end: End = None,
    period: Period = UsagePeriod.day,
    group_by: Annotated[
        list[UsageGroup] | None,
        Query(
            description="What the rows are split by, repeated (`group_by=agent&group_by=model`); "
            "default all four."
        ),
    ] = None,
) -> UsageReport:
    """The organization's model usage and cost, per day, week or month of its calendar and
    per agent, user, model and purpose (admins). Every model call is counted: the runs'
    rounds, the embeddings of ingestion and of searches, the models' tests."""
    groups = list(UsageGroup) if group_by is None else group_by
    return await service.usage_report(session, principal, period, groups, start, end)


@router.get("/me/usage")
async def read_my_usage(
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    start: Start = None,
    end: End = None,
    period: Period = UsagePeriod.day,
    group_by: Annotated[
        list[UsageGroup] | None,
        Query(description="As `GET /usage`; default agent, model and purpose."),
    ] = None,
) -> UsageReport:
    """The caller's own usage in the organization, as `GET /usage` reports it."""
    groups = (
        [group for group in UsageGroup if group != UsageGroup.user]
        if group_by is None
        else group_by
    )
    return await service.usage_report(
        session, principal, period, groups, start, end, user_id=principal.user_id
    )


@router.get(
    "/usage/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "One line per model call."}},
)
async def export_usage(
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    start: Start = None,
    end: End = None,
) -> StreamingResponse:
    """Every usage event of the range as CSV, oldest first (admins), streamed: months of
    events are never held in memory. Columns as the events' fields; times in UTC (ISO 8601),
    cost in micro-USD (empty: no price)."""
    time_zone, start, end = await service.export_range(session, principal, start, end)
    body = service.export_csv(
        request.app.state.database, principal.organization_id, time_zone, start, end
    )
    filename = f"usage-{start.isoformat()}-{end.isoformat()}.csv"
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
