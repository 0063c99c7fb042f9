import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.repository import add_unless_duplicate
from app.prompts.models import PromptTemplate, PromptTemplateLabel, PromptTemplateVersion


async def list_templates(
    session: AsyncSession, organization_id: uuid.UUID
) -> Sequence[PromptTemplate]:
    result = await session.scalars(
        select(PromptTemplate)
        .where(PromptTemplate.organization_id == organization_id)
        .order_by(PromptTemplate.name)
    )
    return result.all()


async def get_template(
    session: AsyncSession,
    organization_id: uuid.UUID,
    template_id: uuid.UUID,
    for_update: bool = False,
) -> PromptTemplate | None:
    """`for_update`: the row locked until the transaction ends (a new version's number)."""
    query = select(PromptTemplate).where(
        PromptTemplate.organization_id == organization_id, PromptTemplate.id == template_id
    )
    if for_update:
        query = query.with_for_update()
    template: PromptTemplate | None = await session.scalar(query)
    return template


async def get_by_name(
    session: AsyncSession, organization_id: uuid.UUID, name: str
) -> PromptTemplate | None:
    template: PromptTemplate | None = await session.scalar(
        select(PromptTemplate).where(
            PromptTemplate.organization_id == organization_id, PromptTemplate.name == name
        )
    )
    return template


async def delete_unless_used(session: AsyncSession, template: PromptTemplate) -> bool:
    """Delete it; False (nothing deleted) if an agent or a quick task uses it (their
    RESTRICT foreign keys)."""
    try:
        async with session.begin_nested():
            await session.delete(template)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def insert_template(session: AsyncSession, template: PromptTemplate) -> bool:
    """False if the organization already has a template of this name."""
    return await add_unless_duplicate(session, template)


async def next_version(session: AsyncSession, template: PromptTemplate) -> int:
    """The template's next version number (its row locked by the caller)."""
    number: int | None = await session.scalar(
        update(PromptTemplate)
        .where(
            PromptTemplate.organization_id == template.organization_id,
            PromptTemplate.id == template.id,
        )
        .values(latest_version=PromptTemplate.latest_version + 1)
        .returning(PromptTemplate.latest_version)
        .execution_options(synchronize_session=False)
    )
    assert number is not None  # the caller holds the template's row
    template.latest_version = number
    return number


async def version_by_hash(
    session: AsyncSession, template: PromptTemplate, content_hash: str
) -> PromptTemplateVersion | None:
    return await _version_where(
        session, template, PromptTemplateVersion.content_hash == content_hash
    )


async def get_version(
    session: AsyncSession, template: PromptTemplate, number: int
) -> PromptTemplateVersion | None:
    return await _version_where(session, template, PromptTemplateVersion.version == number)


async def _version_where(
    session: AsyncSession, template: PromptTemplate, condition: ColumnElement[bool]
) -> PromptTemplateVersion | None:
    version: PromptTemplateVersion | None = await session.scalar(
        select(PromptTemplateVersion).where(
            PromptTemplateVersion.organization_id == template.organization_id,
            PromptTemplateVersion.template_id == template.id,
            condition,
        )
    )
    return version


async def labelled_version(
    session: AsyncSession, template: PromptTemplate, label: str
) -> PromptTemplateVersion | None:
    version: PromptTemplateVersion | None = await session.scalar(
        select(PromptTemplateVersion)
        .join(
            PromptTemplateLabel,
            (PromptTemplateLabel.organization_id == PromptTemplateVersion.organization_id)
            & (PromptTemplateLabel.version_id == PromptTemplateVersion.id),
        )
        .where(
            PromptTemplateLabel.organization_id == template.organization_id,
            PromptTemplateLabel.template_id == template.id,
            PromptTemplateLabel.name == label,
        )
    )
    return version


async def labels_of(
    session: AsyncSession, organization_id: uuid.UUID, template_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Each template's labels and the version number each points at."""
    rows = await session.execute(
        select(
            PromptTemplateLabel.template_id,
            PromptTemplateLabel.name,
            PromptTemplateVersion.version,
        )
        .join(
            PromptTemplateVersion,
            (PromptTemplateVersion.organization_id == PromptTemplateLabel.organization_id)
            & (PromptTemplateVersion.id == PromptTemplateLabel.version_id),
        )
        .where(
            PromptTemplateLabel.organization_id == organization_id,
            PromptTemplateLabel.template_id.in_(template_ids),
        )
        .order_by(PromptTemplateLabel.name)
    )
    labels: dict[uuid.UUID, dict[str, int]] = {}
    for template_id, name, number in rows:
        labels.setdefault(template_id, {})[name] = number
    return labels


async def set_label(
    session: AsyncSession, template: PromptTemplate, name: str, version: PromptTemplateVersion
) -> None:
    """Point the label at the version, making it if it is new (one statement: two admins
    moving one label at once both succeed, the later one wins)."""
    statement = insert(PromptTemplateLabel).values(
        organization_id=template.organization_id,
        template_id=template.id,
        name=name,
        version_id=version.id,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["organization_id", "template_id", "name"],
            set_={"version_id": statement.excluded.version_id, "updated_at": func.now()},
        )
    )


async def delete_label(session: AsyncSession, template: PromptTemplate, name: str) -> bool:
    deleted = await session.scalar(
        delete(PromptTemplateLabel)
        .where(
            PromptTemplateLabel.organization_id == template.organization_id,
            PromptTemplateLabel.template_id == template.id,
            PromptTemplateLabel.name == name,
        )
        .returning(PromptTemplateLabel.id)
    )
    return deleted is not None
