"""The bytes of files, under WORKSPACES_DIR; the rows that describe them are the caller's.

A file arrives in two steps, so that a failure leaves neither bytes without a row nor a row
without bytes: `receive` writes the upload under `.incoming/` (hashing and counting it, and
stopping at the size limit), then, in the transaction that inserts the row, `keep_after_commit`
moves it into place once the row has committed, or deletes it if the transaction rolls back.
A crash between the two leaves only an `.incoming/` file, which the retention job removes.
A full disk (ENOSPC, or EDQUOT for a quota) is `InsufficientStorage`, with the partial file
deleted.

The layout makes each deletion one folder: a conversation's, an organization's whole tree, or
a user's folder in every organization (the `remove_*_after_commit` helpers, for the domains
whose deletions cascade to files).

The interface is the seam for an S3-compatible backend later: paths here are relative keys.
"""

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import after_commit, after_rollback
from app.files.errors import InsufficientStorage

logger = logging.getLogger(__name__)

INCOMING = ".incoming"
CHUNK_BYTES = 1024 * 1024
HEAD_BYTES = 8192  # what content sniffing looks at


class TooLarge(Exception):
    pass


@dataclass(frozen=True)
class Received:
    path: Path
    size_bytes: int
    sha256: str
    head: bytes


def receive(workspaces_dir: Path, source: BinaryIO, max_bytes: int) -> Received:
    """Copy `source` to a new file under `.incoming/`; `TooLarge` beyond `max_bytes`,
    `InsufficientStorage` when the disk is full (and nothing left behind either way).
    Blocking: run it in a thread."""
    folder = workspaces_dir / INCOMING
    path = folder / uuid.uuid4().hex
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with _full_disk_reported():
            folder.mkdir(parents=True, exist_ok=True)
            with path.open("xb") as target:
                while chunk := source.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge()
                    if len(head) < HEAD_BYTES:
                        head += chunk[: HEAD_BYTES - len(head)]
                    digest.update(chunk)
                    target.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Received(path, size, digest.hexdigest(), head)


@contextlib.contextmanager
def _full_disk_reported() -> Iterator[None]:
    """A full disk as InsufficientStorage: the client's to retry later, not our bug."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            logger.warning("no space left for files", extra={"error": str(exc)})
            raise InsufficientStorage("The file could not be stored: no space is left.") from exc
        raise


def discard(received: Received) -> None:
    received.path.unlink(missing_ok=True)


def keep_after_commit(
    session: AsyncSession, workspaces_dir: Path, received: Received, storage_path: str
) -> None:
    """Move the received bytes to `storage_path` once the session commits; delete them if it
    rolls back. The folder is made now, so the move after the commit is a rename and
    nothing else."""
    final = workspaces_dir / storage_path
    # Before the folder: making it can fail too (no inode left), and the request then rolls
    # back with the received bytes still to delete.
    after_rollback(session, lambda: discard(received))
    with _full_disk_reported():
        final.parent.mkdir(parents=True, exist_ok=True)
    after_commit(session, lambda: os.replace(received.path, final))


def delete_after_commit(session: AsyncSession, workspaces_dir: Path, storage_path: str) -> None:
    after_commit(session, lambda: (workspaces_dir / storage_path).unlink(missing_ok=True))


def path_of(workspaces_dir: Path, storage_path: str) -> Path:
    return workspaces_dir / storage_path


def remove_organization_files_after_commit(
    session: AsyncSession, workspaces_dir: Path, organization_id: uuid.UUID
) -> None:
    after_commit(session, lambda: _remove_tree(workspaces_dir / str(organization_id)))


def remove_conversation_files_after_commit(
    session: AsyncSession,
    workspaces_dir: Path,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> None:
    folder = workspaces_dir / str(organization_id) / str(user_id) / str(conversation_id)
    after_commit(session, lambda: _remove_tree(folder))


KNOWLEDGE_FOLDER = "knowledge"  # beside the organization's user folders


def knowledge_folder(organization_id: uuid.UUID, agent_id: uuid.UUID) -> str:
    """Where an agent's knowledge files live, relative to the workspaces folder."""
    return f"{organization_id}/{KNOWLEDGE_FOLDER}/{agent_id}"


def remove_agent_files_after_commit(
    session: AsyncSession, workspaces_dir: Path, agent_id: uuid.UUID
) -> None:
    """Every organization's knowledge files of the agent (a public or platform agent learns
    for each organization that uses it)."""

    def remove() -> None:
        for organization_folder in subfolders(workspaces_dir):
            _remove_tree(organization_folder / KNOWLEDGE_FOLDER / str(agent_id))

    after_commit(session, remove)


def remove_user_files_after_commit(
    session: AsyncSession, workspaces_dir: Path, user_id: uuid.UUID
) -> None:
    def remove() -> None:
        for organization_folder in subfolders(workspaces_dir):
            _remove_tree(organization_folder / str(user_id))

    after_commit(session, remove)


def subfolders(folder: Path) -> list[Path]:
    return [child for child in folder.iterdir() if child.is_dir()] if folder.is_dir() else []


def _remove_tree(folder: Path) -> None:
    if folder.is_dir():
        shutil.rmtree(folder)
        logger.info("removed files", extra={"folder": str(folder)})
