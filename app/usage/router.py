from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.auth.principal import AdminDep
from app.core.db import SessionDep, TransactionalRoute
from app.core.errors import UnprocessableContent
from app.usage import service
from app.usage.schemas import UsageReport

router = APIRouter(prefix="/usage", tags=["usage"], route_class=TransactionalRoute)


@router.get("")
async def read_usage(
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    start: Annotated[
        date | None, Query(description="First day (UTC), default 30 days ago.")
    ] = None,
    end: Annotated[
        date | None, Query(description="Last day (UTC), included; default today.")
    ] = None,
) -> UsageReport:
    """The organization's model usage by day, agent, user and model, with cost (admins)."""
    if start and end and start > end:
        raise UnprocessableContent("`start` is after `end`.")
    return await service.usage_report(
        session, principal, request.app.state.settings.llm_prices, start, end
    )
