import uuid

from fastapi import APIRouter, status

from app.auth.principal import AdminDep
from app.budgets import service
from app.budgets.schemas import BudgetCreate, BudgetRead, BudgetUpdate
from app.core.db import SessionDep, TransactionalRoute

router = APIRouter(prefix="/budgets", tags=["budgets"], route_class=TransactionalRoute)


@router.get("")
async def list_budgets(session: SessionDep, principal: AdminDep) -> list[BudgetRead]:
    """The organization's budgets, then its members', each with its current month (admins)."""
    return await service.list_budgets(session, principal)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_budget(data: BudgetCreate, session: SessionDep, principal: AdminDep) -> BudgetRead:
    """A monthly limit on the organization's (or a member's) model calls, in cost or tokens,
    from this month on (admins). One per metric for the organization and per member."""
    return await service.create_budget(session, principal, data)


@router.get("/{budget_id}")
async def read_budget(budget_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> BudgetRead:
    return await service.read_budget(session, principal, budget_id)


@router.patch("/{budget_id}")
async def update_budget(
    budget_id: uuid.UUID, data: BudgetUpdate, session: SessionDep, principal: AdminDep
) -> BudgetRead:
    """Change the limit or the thresholds; the current month's spend stays (admins)."""
    return await service.update_budget(session, principal, budget_id, data)


@router.delete("/{budget_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_budget(budget_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> None:
    await service.delete_budget(session, principal, budget_id)
