from fastapi import APIRouter

from app.auth.principal import CallerConnectionDep, PrincipalDep
from app.core.db import TransactionalRoute
from app.users import service
from app.users.schemas import Me

router = APIRouter(tags=["users"], route_class=TransactionalRoute)


@router.get("/me")
async def read_me(principal: PrincipalDep, connection: CallerConnectionDep) -> Me:
    """The caller, the organization the token acts for (with the role), and every
    organization the caller belongs to."""
    return await service.describe(connection, principal)
