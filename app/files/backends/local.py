"""Files on the local disk, under WORKSPACES_DIR: the default, and the layout the seeds
designed. A key is a path relative to the folder; staging is a rename away from the final
place (same filesystem), so the move after the commit cannot run out of space.

The blocking file work runs in threads. A full disk (ENOSPC, or EDQUOT for a quota) is
`InsufficientStorage`, with the partial file deleted.
"""

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fastapi import Response
from fastapi.responses import FileResponse

from app.files import storage
from app.files.errors import InsufficientStorage
from app.files.storage import CHUNK_BYTES, HEAD_BYTES, INCOMING, Received, TooLarge

logger = logging.getLogger(__name__)


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def receive(self, source: BinaryIO, max_bytes: int) -> Received:
        return await asyncio.to_thread(self._receive, source, max_bytes)

    def _receive(self, source: BinaryIO, max_bytes: int) -> Received:
        key = storage.new_staging_key()
        path = self.root / key
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with _full_disk_reported():
                path.parent.mkdir(parents=True, exist_ok=True)
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
        return Received(key, size, digest.hexdigest(), head, path.read_bytes)

    async def stage(self, received: Received, key: str, media_type: str, name: str) -> None:
        # The bytes are on disk already; the folder is made now, so the move after the
        # commit is a rename and nothing else (making it can fail: no inode left).
        def make_folder() -> None:
            with _full_disk_reported():
                (self.root / key).parent.mkdir(parents=True, exist_ok=True)

        await asyncio.to_thread(make_folder)

    async def move_into_place(self, received: Received, key: str) -> None:
        os.replace(self.root / received.staging_key, self.root / key)

    async def discard(self, received: Received) -> None:
        (self.root / received.staging_key).unlink(missing_ok=True)

    async def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    async def delete_folder(self, folder: str) -> None:
        path = self.root / folder
        if path.is_dir():
            await asyncio.to_thread(shutil.rmtree, path)
            logger.info("removed files", extra={"folder": str(path)})

    async def subfolders(self, folder: str) -> list[str]:
        path = self.root / folder
        if not path.is_dir():
            return []
        return sorted(
            child.name for child in path.iterdir() if child.is_dir() and child.name != INCOMING
        )

    async def remove_staged_before(self, timestamp: float) -> int:
        incoming = self.root / INCOMING
        if not incoming.is_dir():
            return 0
        removed = 0
        for path in incoming.iterdir():
            if path.is_file() and path.stat().st_mtime < timestamp:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    async def keys(self, folder: str = "") -> list[str]:
        path = self.root / folder
        if not path.is_dir():
            return []
        return sorted(
            str(found.relative_to(self.root)) for found in path.rglob("*") if found.is_file()
        )

    async def read_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread((self.root / key).read_bytes)

    async def download(self, key: str, media_type: str, name: str) -> Response:
        return FileResponse(self.root / key, media_type=media_type, filename=name)

    async def close(self) -> None:
        pass


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


def wall_clock() -> float:
    return time.time()
