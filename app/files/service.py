"""Files of conversations: uploaded by the conversation's owner, read by whoever may read the
conversation, stored (app/files/storage.py: on the local disk or in an S3 bucket) as
`{org_id}/{user_id}/{conversation_id}/files/{uploads|generated|attachments}/{file_id}{ext}`.

The name is the service's (the file's id and the extension of its detected type); the
client's name is kept as metadata only, cleaned of path separators and control characters.
The same bytes twice in one conversation are stored once: the second upload answers with the
first file.
"""

import asyncio
import logging
import unicodedata
import uuid
from typing import Any, BinaryIO

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.identity import OrganizationPrincipal
from app.conversations import service as conversations_service
from app.conversations.errors import ConversationNotFound
from app.conversations.models import Conversation
from app.core.raises import raises
from app.files import media_types, repository
from app.files import storage as file_storage
from app.files.errors import (
    FileNotFound,
    FileTooLarge,
    InsufficientStorage,
    InvalidAttachment,
    StorageUnavailable,
    UnsupportedFileType,
)
from app.files.models import File, FileCategory
from app.files.storage import Received, Storage
from app.jobs.outbox import defer_in_transaction

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 255
# The knowledge domain's job (app/knowledge/tasks.py) that makes a file searchable in its
# conversation. Named, not imported: knowledge depends on files, not the other way round.
INGEST_FILE_JOB = "knowledge:ingest_file"


async def upload(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    conversation_id: uuid.UUID,
    source: BinaryIO,
    name: str,
    storage: Storage,
    max_bytes: int,
) -> tuple[File, bool]:
    """The stored file, and whether it is new (False: the conversation already had these
    bytes). The bytes are in place once the request commits, never before."""
    conversation = await conversations_service.get_own_conversation(
        session, principal, conversation_id
    )
    received, media_type = await receive(source, name, storage, max_bytes, media_types.ALLOWED)
    existing = await repository.get_by_sha256(
        session, conversation.organization_id, conversation.id, received.sha256
    )
    if existing is not None:
        await storage.discard(received)
        return existing, False
    file_id = uuid.uuid4()
    file = File(
        id=file_id,
        organization_id=conversation.organization_id,
        conversation_id=conversation.id,
        user_id=conversation.user_id,
        category=FileCategory.uploads,
        original_name=clean_name(name),
        storage_path=storage_path(
            conversation.organization_id,
            conversation.user_id,
            conversation.id,
            FileCategory.uploads,
            f"{file_id}{media_types.EXTENSIONS[media_type]}",
        ),
        media_type=media_type,
        size_bytes=received.size_bytes,
        sha256=received.sha256,
    )
    if not await repository.insert(session, file):
        # The same bytes arrived at the same moment in another request.
        await storage.discard(received)
        concurrent = await repository.get_by_sha256(
            session, conversation.organization_id, conversation.id, received.sha256
        )
        if concurrent is None:
            raise FileNotFound()
        return concurrent, False
    await file_storage.keep_after_commit(
        session, storage, received, file.storage_path, media_type, file.original_name
    )
    if media_type in media_types.READABLE:
        await defer_in_transaction(
            session,
            INGEST_FILE_JOB,
            {"organization_id": str(file.organization_id), "file_id": str(file.id)},
            lock=f"file-{file.id}",
        )
    return file, True


@raises(InsufficientStorage, StorageUnavailable)  # the storage's: not followed by the reading
async def receive(
    source: BinaryIO, name: str, storage: Storage, max_bytes: int, accepted: set[str]
) -> tuple[Received, str]:
    """An upload read by the storage and its type, detected from its bytes; FileTooLarge,
    UnsupportedFileType or InsufficientStorage (and nothing left behind) otherwise. The
    caller keeps or discards the bytes (`file_storage.keep_after_commit`)."""
    try:
        received = await storage.receive(source, max_bytes)
    except file_storage.TooLarge as exc:
        raise FileTooLarge(f"Files may be at most {max_bytes} bytes.") from exc
    try:
        media_type = await asyncio.to_thread(
            media_types.detect, received.head, name, received.read_all
        )
        if media_type not in accepted:
            raise media_types.Unsupported(f"Files of type {media_type} are not accepted here.")
    except media_types.Unsupported as exc:
        await storage.discard(received)
        raise UnsupportedFileType(f"{exc} Accepted: {', '.join(sorted(accepted))}.") from exc
    return received, media_type


async def get_readable_file(
    session: AsyncSession, principal: OrganizationPrincipal, file_id: uuid.UUID
) -> File:
    """A file of a conversation the caller may read (their own, or one shared with the
    organization); any other is FileNotFound."""
    file = await repository.get(session, principal.organization_id, file_id)
    if file is None:
        raise FileNotFound()
    try:
        await conversations_service.get_readable_conversation(
            session, principal, file.conversation_id
        )
    except ConversationNotFound as exc:
        raise FileNotFound() from exc
    return file


async def get_with_conversation(
    session: AsyncSession, organization_id: uuid.UUID, file_id: uuid.UUID
) -> tuple[File, Conversation] | None:
    """For work without a caller (ingestion jobs)."""
    file = await repository.get(session, organization_id, file_id)
    if file is None:
        return None
    conversation = await conversations_service.get_in_organization(
        session, organization_id, file.conversation_id
    )
    return None if conversation is None else (file, conversation)


async def list_files(
    session: AsyncSession, principal: OrganizationPrincipal, conversation_id: uuid.UUID
) -> list[File]:
    conversation = await conversations_service.get_readable_conversation(
        session, principal, conversation_id
    )
    return await repository.list_for_conversation(
        session, conversation.organization_id, conversation.id
    )


async def get_in_conversation(
    session: AsyncSession, conversation: Conversation, file_ids: set[uuid.UUID]
) -> dict[uuid.UUID, File]:
    """The conversation's files among `file_ids`; InvalidAttachment names any other."""
    if not file_ids:
        return {}
    files = await repository.list_in_conversation(
        session, conversation.organization_id, conversation.id, list(file_ids)
    )
    found = {file.id: file for file in files}
    missing = file_ids - found.keys()
    if missing:
        raise InvalidAttachment(
            "A message names files that are not in this conversation: "
            + ", ".join(sorted(str(file_id) for file_id in missing))
        )
    return found


def as_part(file: File) -> dict[str, Any]:
    """How a message's `parts` show an attached file."""
    return {
        "type": "file",
        "file_id": str(file.id),
        "name": file.original_name,
        "media_type": file.media_type,
    }


async def delete(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    file_id: uuid.UUID,
    storage: Storage,
) -> None:
    """The owner of the file's conversation only; its chunks and message links go with the
    row, its bytes once that commits."""
    file = await get_readable_file(session, principal, file_id)
    await conversations_service.get_own_conversation(session, principal, file.conversation_id)
    await repository.delete_file(session, file.organization_id, file.id)
    file_storage.delete_after_commit(session, storage, file.storage_path)


def storage_path(
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    category: FileCategory,
    name: str,
) -> str:
    return f"{organization_id}/{user_id}/{conversation_id}/files/{category.value}/{name}"


def clean_name(name: str) -> str:
    """The client's file name as metadata: its last path component, without control or
    format characters (NUL included), at most MAX_NAME_CHARS; "file" if nothing is left."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    if kept in ("", ".", ".."):
        return "file"
    if len(kept) > MAX_NAME_CHARS:
        stem, dot, extension = kept.rpartition(".")
        if dot and len(extension) < 16:
            return stem[: MAX_NAME_CHARS - len(extension) - 1] + "." + extension
        return kept[:MAX_NAME_CHARS]
    return kept
