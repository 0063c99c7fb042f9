"""Prompt templates (`/prompt-templates`): admins create them and save versions, move labels
and delete them; members read and render them.

A version is checked when it is saved: its variables must be a JSON Schema of an object
(Draft 2020-12), and its text may use only declared variables (and must parse, for Jinja).
Rendering fills in the declared defaults, refuses with 422 the required variables that are
missing (named) and values that do not fit their schema, then runs the template's engine
(app/prompts/engines.py).
"""

import hashlib
import uuid
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.identity import OrganizationPrincipal
from app.prompts import engines, repository
from app.prompts.errors import (
    InvalidTemplate,
    InvalidTemplateReference,
    InvalidVariables,
    LabelNotFound,
    MissingVariables,
    RenderRefused,
    TemplateInUse,
    TemplateNameTaken,
    TemplateNotFound,
    VersionNotFound,
)
from app.prompts.models import (
    PromptTemplate,
    PromptTemplateVersion,
    TemplateEngine,
)
from app.prompts.schemas import (
    LATEST,
    LabelWrite,
    Rendered,
    RenderRequest,
    TemplateCreate,
    TemplateRead,
    TemplateReference,
    VersionCreate,
    VersionRead,
)


async def list_templates(
    session: AsyncSession, principal: OrganizationPrincipal
) -> list[TemplateRead]:
    templates = await repository.list_templates(session, principal.organization_id)
    return await _read(session, principal, list(templates))


async def read_template(
    session: AsyncSession, principal: OrganizationPrincipal, template_id: uuid.UUID
) -> TemplateRead:
    [read] = await _read(session, principal, [await _get(session, principal, template_id)])
    return read


async def create_template(
    session: AsyncSession, principal: OrganizationPrincipal, data: TemplateCreate
) -> TemplateRead:
    """The template with its first version."""
    _check(data.engine, data.text, data.variables)
    template = PromptTemplate(
        organization_id=principal.organization_id,
        name=data.name,
        kind=data.kind,
        engine=data.engine,
        description=data.description,
    )
    if not await repository.insert_template(session, template):
        raise TemplateNameTaken(f"The organization already has a template named {data.name!r}.")
    await _add_version(session, principal, template, data)
    return await read_template(session, principal, template.id)


async def save_version(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    template_id: uuid.UUID,
    data: VersionCreate,
) -> tuple[VersionRead, bool]:
    """The version with this text and these variables: a new one (True), or the one that
    already has them (False)."""
    template = await _get(session, principal, template_id, for_update=True)
    _check(template.engine, data.text, data.variables)
    existing = await repository.version_by_hash(session, template, _hash(data))
    if existing is not None:
        return VersionRead.model_validate(existing), False
    version = await _add_version(session, principal, template, data)
    return VersionRead.model_validate(version), True


async def read_version(
    session: AsyncSession, principal: OrganizationPrincipal, template_id: uuid.UUID, number: int
) -> VersionRead:
    template = await _get(session, principal, template_id)
    return VersionRead.model_validate(await _version(session, template, number))


async def set_label(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    template_id: uuid.UUID,
    label: str,
    data: LabelWrite,
) -> TemplateRead:
    if label == LATEST:
        raise InvalidTemplate("`latest` is always the newest version: it cannot be moved.")
    template = await _get(session, principal, template_id)
    await repository.set_label(
        session, template, label, await _version(session, template, data.version)
    )
    return await read_template(session, principal, template_id)


async def delete_label(
    session: AsyncSession, principal: OrganizationPrincipal, template_id: uuid.UUID, label: str
) -> None:
    template = await _get(session, principal, template_id)
    if not await repository.delete_label(session, template, label):
        raise LabelNotFound(f"The template has no label {label!r}.")


async def delete_template(
    session: AsyncSession, principal: OrganizationPrincipal, template_id: uuid.UUID
) -> None:
    """The template goes with its versions and labels; one an agent's instructions or a
    quick task's prompt come from stays (409)."""
    template = await _get(session, principal, template_id)
    if not await repository.delete_unless_used(session, template):
        raise TemplateInUse(
            "An agent's instructions or a quick task's prompt come from this template: "
            "change them first."
        )


async def render(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    template_id: uuid.UUID,
    request: RenderRequest,
) -> Rendered:
    template = await _get(session, principal, template_id)
    if request.version is not None:
        version = await _version(session, template, request.version)
    else:
        version = await _labelled(session, template, request.label or LATEST)
    return Rendered(
        version=version.version,
        text=await render_version(template.engine, version, request.variables),
    )


async def render_version(
    engine: TemplateEngine, version: PromptTemplateVersion, values: dict[str, Any]
) -> str:
    """The version's text with `values` (and the declared defaults) filled in."""
    filled = _filled(version.variables, values)
    if engine == TemplateEngine.plain:
        return engines.render_plain(version.text, filled)
    try:
        return await engines.render_jinja(version.text, filled)
    except engines.RenderRefused as exc:
        raise RenderRefused(str(exc)) from exc


async def check_reference(
    session: AsyncSession,
    organization_id: uuid.UUID,
    reference: TemplateReference,
    visibility: str,
    render: bool = True,
) -> dict[str, Any]:
    """What an agent's instructions template must be, checked when the agent is saved: the
    organization's template (else 404), a label it has, variables that render; and the
    agent private, since other organizations running it cannot read this one's templates
    (422). The reference as the agent stores it."""
    if visibility != "private":
        raise InvalidTemplateReference(
            "Only a private agent takes its instructions from a template: the organizations "
            "that run a public or hidden agent cannot read yours."
        )
    template = await repository.get_by_name(session, organization_id, reference.name)
    if template is None:
        raise TemplateNotFound(f"The organization has no prompt template {reference.name!r}.")
    version = await _labelled(session, template, reference.label)
    if render:  # its variables are complete: they must render now
        await render_version(template.engine, version, reference.variables)
    return {"template_id": str(template.id), **reference.model_dump(mode="json")}


async def render_reference(
    session: AsyncSession, organization_id: uuid.UUID, reference: dict[str, Any]
) -> tuple[str, uuid.UUID]:
    """An agent's instructions from its template, as its label now points: the text and the
    version it came from (a run's usage events record it)."""
    template = await repository.get_template(
        session, organization_id, uuid.UUID(reference["template_id"])
    )
    if template is None:  # the foreign key keeps it; another organization runs the agent
        raise TemplateNotFound("The agent's instructions template is not this organization's.")
    version = await _labelled(session, template, reference["label"])
    return await render_version(template.engine, version, reference["variables"]), version.id


def _check(engine: TemplateEngine, text: str, variables: dict[str, Any]) -> None:
    """A version that can be saved, or InvalidTemplate saying why not."""
    try:
        Draft202012Validator.check_schema(variables)
    except SchemaError as exc:
        raise InvalidTemplate(f"`variables` is not a JSON Schema: {exc.message}") from exc
    if variables.get("type") != "object" or not isinstance(variables.get("properties", {}), dict):
        raise InvalidTemplate('`variables` must be a schema of an object: `"type": "object"`.')
    declared = set(variables.get("properties", {}))
    missing = set(variables.get("required", [])) - declared
    if missing:
        raise InvalidTemplate(f"Required but not declared in `properties`: {_names(missing)}.")
    try:
        used = (
            engines.plain_variables(text)
            if engine == TemplateEngine.plain
            else engines.jinja_variables(text)
        )
    except engines.RenderRefused as exc:
        raise InvalidTemplate(str(exc)) from exc
    undeclared = used - declared
    if undeclared:
        raise InvalidTemplate(f"The text uses undeclared variables: {_names(undeclared)}.")


def _filled(variables: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = variables.get("properties", {})
    filled = {
        name: schema["default"]
        for name, schema in properties.items()
        if isinstance(schema, dict) and "default" in schema
    } | values
    missing = set(variables.get("required", [])) - set(filled)
    if missing:
        raise MissingVariables(f"Missing variables: {_names(missing)}.", missing=sorted(missing))
    error = next(iter(Draft202012Validator(variables).iter_errors(filled)), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(the variables)"
        raise InvalidVariables(f"{where}: {error.message}")
    return filled


def _names(names: set[str]) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names))


def _hash(data: VersionCreate) -> str:
    content = orjson.dumps(
        {"text": data.text, "variables": data.variables}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(content).hexdigest()


async def _add_version(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    template: PromptTemplate,
    data: VersionCreate,
) -> PromptTemplateVersion:
    """The next version, numbered under the template's row lock (taken by the update)."""
    version = PromptTemplateVersion(
        organization_id=template.organization_id,
        template_id=template.id,
        version=await repository.next_version(session, template),
        text=data.text,
        variables=data.variables,
        content_hash=_hash(data),
        created_by_user_id=principal.user_id,
    )
    session.add(version)
    await session.flush()
    return version


async def _get(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    template_id: uuid.UUID,
    for_update: bool = False,
) -> PromptTemplate:
    template = await repository.get_template(
        session, principal.organization_id, template_id, for_update
    )
    if template is None:
        raise TemplateNotFound()
    return template


async def _version(
    session: AsyncSession, template: PromptTemplate, number: int
) -> PromptTemplateVersion:
    version = await repository.get_version(session, template, number)
    if version is None:
        raise VersionNotFound(f"The template has no version {number}.")
    return version


async def _labelled(
    session: AsyncSession, template: PromptTemplate, label: str
) -> PromptTemplateVersion:
    if label == LATEST:
        return await _version(session, template, template.latest_version)
    version = await repository.labelled_version(session, template, label)
    if version is None:
        raise LabelNotFound(f"The template has no label {label!r}.")
    return version


async def _read(
    session: AsyncSession, principal: OrganizationPrincipal, templates: list[PromptTemplate]
) -> list[TemplateRead]:
    labels = await repository.labels_of(
        session, principal.organization_id, [template.id for template in templates]
    )
    return [
        TemplateRead(
            id=template.id,
            name=template.name,
            kind=template.kind,
            engine=template.engine,
            description=template.description,
            latest_version=template.latest_version,
            labels=labels.get(template.id, {}),
            created_at=template.created_at,
            updated_at=template.updated_at,
        )
        for template in templates
    ]
