from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.principal import OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute
from app.notifications import service
from app.notifications.schemas import NotificationPage

router = APIRouter(prefix="/notifications", tags=["notifications"], route_class=TransactionalRoute)


@router.get("")
async def list_notifications(
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> NotificationPage:
    """What the service told the organization, newest first: admins read all of it, a
    member what was addressed to them (a threshold of their own budget)."""
    return await service.list_notifications(session, principal, cursor, limit)
