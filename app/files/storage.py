"""The bytes of files, behind one small interface with two backends; the rows that describe
them are the caller's.

- `local` (the default, app/files/backends/local.py): a tree under WORKSPACES_DIR.
- `s3` (`STORAGE_BACKEND=s3`, app/files/backends/s3.py): an S3-compatible bucket, under
  S3_KEY_PREFIX, through `obstore` (chosen by measurement: see that module).

`app.files.backends.create_storage(settings)` makes the one the settings choose.

Both keep the same keys, `{org_id}/{user_id}/{conversation_id}/files/{category}/{name}` and
`{org_id}/knowledge/{agent_id}/{name}`, so each deletion is one prefix: a conversation's, an
organization's, a user's in every organization, an agent's knowledge in every organization.

A file arrives in two steps, so that a failure leaves neither bytes without a row nor a row
without bytes. `receive` reads the upload once (hashing and counting it, stopping at the size
limit); in the transaction that inserts the row, `keep_after_commit` stages the bytes under
`.incoming/` and moves them to their key once the row has committed, or deletes them if the
transaction rolls back. A crash between the two leaves only a staged object, which the
retention job removes after a day. Deletions wait for the commit the same way. A full disk is
`InsufficientStorage` (507); an object store that refuses is `StorageUnavailable` (503); in
either case nothing of the attempt is kept.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol
from urllib.parse import quote

from fastapi import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import after_commit, after_rollback
from app.core.raises import raises
from app.files.errors import InsufficientStorage, StorageUnavailable

INCOMING = ".incoming"
CHUNK_BYTES = 1024 * 1024
HEAD_BYTES = 8192  # what content sniffing looks at
KNOWLEDGE_FOLDER = "knowledge"  # beside the organization's user folders


class TooLarge(Exception):
    pass


@dataclass(frozen=True)
class Received:
    """An upload read once: what the row records, and what staging needs."""

    staging_key: str
    size_bytes: int
    sha256: str
    head: bytes
    read_all: Callable[[], bytes] = field(repr=False, compare=False)
    """All the bytes (blocking): for content sniffing of text."""
    source: BinaryIO | None = field(default=None, repr=False, compare=False)
    """The upload itself, when the backend stages from it later (S3)."""


class Storage(Protocol):
    """Keys are relative (`{org_id}/...`); a folder is a key prefix without its slash."""

    async def receive(self, source: BinaryIO, max_bytes: int) -> Received:
        """Read `source` once; `TooLarge` beyond `max_bytes` (nothing kept either way)."""
        ...

    async def stage(self, received: Received, key: str, media_type: str, name: str) -> None:
        """Make the received bytes ready to become `key` (before the row commits)."""
        ...

    async def move_into_place(self, received: Received, key: str) -> None:
        """The staged bytes become `key` (after the row committed)."""
        ...

    async def discard(self, received: Received) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def delete_folder(self, folder: str) -> None:
        """Everything under `folder/`; nothing if there is none."""
        ...

    async def subfolders(self, folder: str) -> list[str]:
        """The names of the folders directly under `folder` ("" for the root), staging
        excluded."""
        ...

    async def remove_staged_before(self, timestamp: float) -> int:
        """Staged objects last written before `timestamp`: uploads that never reached their
        row. How many were removed."""
        ...

    async def keys(self, folder: str = "") -> list[str]:
        """Every key under `folder`, staged ones included, sorted."""
        ...

    async def read_bytes(self, key: str) -> bytes: ...

    async def download(self, key: str, media_type: str, name: str) -> Response:
        """The response that serves `key`: streamed, never read whole into memory."""
        ...

    async def close(self) -> None: ...


def new_staging_key() -> str:
    return f"{INCOMING}/{uuid.uuid4().hex}"


def content_disposition(name: str) -> str:
    """`attachment` with the client's name, as Starlette's FileResponse writes it (RFC 6266,
    RFC 5987 for names that are not plain ASCII)."""
    quoted = quote(name)
    if quoted != name:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{name}"'


@raises(InsufficientStorage, StorageUnavailable)  # the backend's: not followed by the reading
async def keep_after_commit(
    session: AsyncSession,
    storage: Storage,
    received: Received,
    key: str,
    media_type: str,
    name: str,
) -> None:
    """Stage the received bytes for `key` now and move them there once the session commits;
    delete them if it rolls back."""
    # Before staging: staging can fail half-way too (a full disk, a refusing store), and the
    # request then rolls back with whatever was written still to delete.
    after_rollback(session, lambda: storage.discard(received))
    await storage.stage(received, key, media_type, name)
    after_commit(session, lambda: storage.move_into_place(received, key))


def delete_after_commit(session: AsyncSession, storage: Storage, key: str) -> None:
    after_commit(session, lambda: storage.delete(key))


def remove_organization_files_after_commit(
    session: AsyncSession, storage: Storage, organization_id: uuid.UUID
) -> None:
    after_commit(session, lambda: storage.delete_folder(str(organization_id)))


def conversation_folder(
    organization_id: uuid.UUID, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> str:
    return f"{organization_id}/{user_id}/{conversation_id}"


def remove_conversation_files_after_commit(
    session: AsyncSession,
    storage: Storage,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> None:
    folder = conversation_folder(organization_id, user_id, conversation_id)
    after_commit(session, lambda: storage.delete_folder(folder))


def knowledge_folder(organization_id: uuid.UUID, agent_id: uuid.UUID) -> str:
    """Where an agent's knowledge files live."""
    return f"{organization_id}/{KNOWLEDGE_FOLDER}/{agent_id}"


def remove_agent_files_after_commit(
    session: AsyncSession, storage: Storage, agent_id: uuid.UUID
) -> None:
    """Every organization's knowledge files of the agent (a public or platform agent learns
    for each organization that uses it)."""

    async def remove() -> None:
        for organization in await storage.subfolders(""):
            await storage.delete_folder(f"{organization}/{KNOWLEDGE_FOLDER}/{agent_id}")

    after_commit(session, remove)


def remove_user_files_after_commit(
    session: AsyncSession, storage: Storage, user_id: uuid.UUID
) -> None:
    async def remove() -> None:
        for organization in await storage.subfolders(""):
            await storage.delete_folder(f"{organization}/{user_id}")

    after_commit(session, remove)
