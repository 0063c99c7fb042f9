import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.auth.principal import AdminDep, OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute
from app.prompts import service
from app.prompts.schemas import (
    LabelName,
    LabelWrite,
    Rendered,
    RenderRequest,
    TemplateCreate,
    TemplateRead,
    VersionCreate,
    VersionRead,
)

router = APIRouter(
    prefix="/prompt-templates", tags=["prompt-templates"], route_class=TransactionalRoute
)

Label = Annotated[LabelName, Path(description="`production`, `staging`, or any other name.")]


@router.get("")
async def list_prompt_templates(
    session: SessionDep, principal: OrganizationPrincipalDep
) -> list[TemplateRead]:
    return await service.list_templates(session, principal)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_prompt_template(
    data: TemplateCreate, session: SessionDep, principal: AdminDep
) -> TemplateRead:
    """A template with its first version (admins); its name is unique in the organization."""
    return await service.create_template(session, principal, data)


@router.get("/{template_id}")
async def read_prompt_template(
    template_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> TemplateRead:
    return await service.read_template(session, principal, template_id)


@router.delete("/{template_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_prompt_template(
    template_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> None:
    await service.delete_template(session, principal, template_id)


@router.post(
    "/{template_id}/versions",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "The version that already has this text and variables."}},
)
async def save_prompt_template_version(
    template_id: uuid.UUID,
    data: VersionCreate,
    session: SessionDep,
    principal: AdminDep,
    response: Response,
) -> VersionRead:
    """A new version (201, the next number), or the one that already has this text and
    these variables (200) (admins)."""
    version, created = await service.save_version(session, principal, template_id, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return version


@router.get("/{template_id}/versions/{version}")
async def read_prompt_template_version(
    template_id: uuid.UUID,
    version: Annotated[int, Path(ge=1)],
    session: SessionDep,
    principal: OrganizationPrincipalDep,
) -> VersionRead:
    return await service.read_version(session, principal, template_id, version)


@router.put("/{template_id}/labels/{label}")
async def set_prompt_template_label(
    template_id: uuid.UUID, label: Label, data: LabelWrite, session: SessionDep, principal: AdminDep
) -> TemplateRead:
    """Point a label at one of the template's versions, making or moving it (admins)."""
    return await service.set_label(session, principal, template_id, label, data)


@router.delete("/{template_id}/labels/{label}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_prompt_template_label(
    template_id: uuid.UUID, label: Label, session: SessionDep, principal: AdminDep
) -> None:
    await service.delete_label(session, principal, template_id, label)


@router.post("/{template_id}/render")
async def render_prompt_template(
    template_id: uuid.UUID,
    data: RenderRequest,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
) -> Rendered:
    """A version (`version`, or a label's, default `latest`) rendered with `variables`, as a
    run would render it: a preview."""
    return await service.render(session, principal, template_id, data)
