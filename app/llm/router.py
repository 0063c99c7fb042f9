import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from app.auth.principal import AdminDep, OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute
from app.core.egress import EgressGuard
from app.llm import service
from app.llm.models import ModelCapability
from app.llm.schemas import ModelCreate, ModelRead, ModelTestResult, ModelUpdate, PriceCreate

router = APIRouter(prefix="/models", tags=["models"], route_class=TransactionalRoute)


@router.get("")
async def list_models(
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    capability: Annotated[
        ModelCapability | None, Query(description="Only models with this capability.")
    ] = None,
    include_inactive: bool = False,
) -> list[ModelRead]:
    """The models the caller's organization may use: the platform's, then its own."""
    return await service.list_models(session, principal, capability, include_inactive)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_model(
    data: ModelCreate, request: Request, session: SessionDep, principal: AdminDep
) -> ModelRead:
    """Register a model of the caller's organization, with its key and price (admins)."""
    return await service.create_model(session, principal, request.app.state.vault, data)


@router.get("/{model_id}")
async def read_model(
    model_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> ModelRead:
    return await service.read_model(session, principal, model_id)


@router.patch("/{model_id}")
async def update_model(
    model_id: uuid.UUID,
    data: ModelUpdate,
    request: Request,
    session: SessionDep,
    principal: AdminDep,
) -> ModelRead:
    """Change a model the caller's organization owns (admins); the platform's are read-only."""
    vault = request.app.state.vault
    return await service.update_model(session, principal, vault, model_id, data)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_model(
    model_id: uuid.UUID, request: Request, session: SessionDep, principal: AdminDep
) -> None:
    """Remove a model of the caller's organization, with its key and prices (admins)."""
    await service.delete_model(session, principal, request.app.state.vault, model_id)


@router.post("/{model_id}/prices", status_code=status.HTTP_201_CREATED)
async def add_price(
    model_id: uuid.UUID, data: PriceCreate, session: SessionDep, principal: AdminDep
) -> ModelRead:
    """A new price from `effective_from` on (now by default, never in the past) (admins)."""
    return await service.add_price(session, principal, model_id, data)


@router.post("/{model_id}/test")
async def test_model(
    model_id: uuid.UUID, request: Request, session: SessionDep, principal: AdminDep
) -> ModelTestResult:
    """Send the model one tiny request: its latency, and the provider's error if any (admins)."""
    guard = EgressGuard.from_settings(request.app.state.settings)
    vault = request.app.state.vault
    return await service.test_model(session, principal, vault, guard, model_id)
