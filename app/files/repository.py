import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.repository import add_unless_duplicate
from app.files.models import File


async def get(session: AsyncSession, organization_id: uuid.UUID, file_id: uuid.UUID) -> File | None:
    file: File | None = await session.scalar(
        select(File).where(File.organization_id == organization_id, File.id == file_id)
    )
    return file


async def get_by_sha256(
    session: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID, sha256: str
) -> File | None:
    file: File | None = await session.scalar(
        select(File).where(
            File.organization_id == organization_id,
            File.conversation_id == conversation_id,
            File.sha256 == sha256,
        )
    )
    return file


async def list_for_conversation(
    session: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> list[File]:
    files = await session.scalars(
        select(File)
        .where(File.organization_id == organization_id, File.conversation_id == conversation_id)
        .order_by(File.created_at, File.id)
    )
    return list(files)


async def list_in_conversation(
    session: AsyncSession,
    organization_id: uuid.UUID,
    conversation_id: uuid.UUID,
    file_ids: list[uuid.UUID],
) -> list[File]:
    files = await session.scalars(
        select(File).where(
            File.organization_id == organization_id,
            File.conversation_id == conversation_id,
            File.id.in_(file_ids),
        )
    )
    return list(files)


async def insert(session: AsyncSession, file: File) -> bool:
    """False if the conversation already holds the same bytes (a concurrent upload)."""
    return await add_unless_duplicate(session, file)


async def delete_file(
    session: AsyncSession, organization_id: uuid.UUID, file_id: uuid.UUID
) -> None:
    await session.execute(
        delete(File).where(File.organization_id == organization_id, File.id == file_id)
    )
