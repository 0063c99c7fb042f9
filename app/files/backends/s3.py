"""Files in an S3-compatible bucket (`STORAGE_BACKEND=s3`: AWS S3, SeaweedFS, MinIO, R2...),
under S3_KEY_PREFIX, with the local backend's keys and guarantees.

The client is `obstore` (Rust's object_store crate), chosen over `aioboto3` by measurement
against SeaweedFS on loopback (bench/bench_storage.py, figures in docs/performance.md): the
same speed for a 20 MB file, 3-4 times faster for 200 small ones (the per-request cost is
Rust's, not botocore's), half the memory (60 MB peak against 115 MB, 32 MB after import
against 66 MB), typed, and one dependency instead of botocore, aiohttp and boto3.

How the two steps map onto a bucket: `receive` only reads the upload (Starlette has already
spooled it to a temporary file) to hash, count and sniff it; `stage` uploads it to
`.incoming/{uuid}` with its type and download name as the object's headers, before the row
commits; after the commit `move_into_place` renames it (S3: a server-side copy, which keeps
those headers, then a delete) to its key. Large bodies go up in parts of PART_BYTES,
PARTS_AT_ONCE at a time, and come down in pieces of PIECE_BYTES: memory stays bounded
whatever the file's size. A refusing or unreachable store is `StorageUnavailable` (503),
one that says it is full `InsufficientStorage` (507).
"""

import asyncio
import hashlib
import logging
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

import obstore
from fastapi import Response
from fastapi.responses import RedirectResponse, StreamingResponse
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from app.core.errors import AppError
from app.files import storage
from app.files.errors import FileNotFound, InsufficientStorage, StorageUnavailable
from app.files.storage import CHUNK_BYTES, HEAD_BYTES, INCOMING, Received, TooLarge

if TYPE_CHECKING:
    from obstore.store import S3Config

    from app.core.settings import Settings

logger = logging.getLogger(__name__)

PART_BYTES = 5 * 1024 * 1024  # S3's smallest part
PARTS_AT_ONCE = 2
PIECE_BYTES = 256 * 1024
MOVE_ATTEMPTS = 3
# What S3-compatible stores answer when they are out of room (MinIO, Ceph, quotas).
FULL_MARKERS = ("StorageFull", "QuotaExceeded", "InsufficientStorage", "507 Insufficient")


class S3Storage:
    def __init__(self, store: S3Store, presigned_expiry: timedelta | None = None) -> None:
        self.store = store
        self.presigned_expiry = presigned_expiry

    @classmethod
    def from_settings(cls, settings: "Settings") -> "S3Storage":
        endpoint = settings.s3_endpoint_url
        config: S3Config = {"region": settings.s3_region}
        if endpoint:
            # Path-style requests: what SeaweedFS and MinIO expect at a plain endpoint.
            config |= {
                "endpoint": endpoint,
                "virtual_hosted_style_request": False,
            }
        if settings.s3_access_key_id:
            config["access_key_id"] = settings.s3_access_key_id
        if settings.s3_secret_access_key:
            config["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
        store = S3Store(
            settings.s3_bucket,
            prefix=settings.s3_key_prefix.strip("/") or None,
            config=config,
            client_options={
                "allow_http": bool(endpoint and endpoint.startswith("http://")),
                "connect_timeout": timedelta(seconds=5),
                # A whole download, however slowly the client reads it.
                "timeout": timedelta(hours=1),
            },
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=30)},
        )
        expiry = settings.s3_presigned_download_seconds
        return cls(store, timedelta(seconds=expiry) if expiry else None)

    async def receive(self, source: BinaryIO, max_bytes: int) -> Received:
        return await asyncio.to_thread(self._receive, source, max_bytes)

    def _receive(self, source: BinaryIO, max_bytes: int) -> Received:
        if not source.seekable():
            source = _spooled(source, max_bytes)
        source.seek(0)
        digest = hashlib.sha256()
        size = 0
        head = b""
        while chunk := source.read(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge()
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            digest.update(chunk)

        def read_all() -> bytes:
            source.seek(0)
            return source.read()

        source.seek(0)
        return Received(storage.new_staging_key(), size, digest.hexdigest(), head, read_all, source)

    async def stage(self, received: Received, key: str, media_type: str, name: str) -> None:
        source = received.source
        assert source is not None
        source.seek(0)

        def pieces() -> Iterator[bytes]:
            # Pieces read here, not the file handed to obstore: its own reads buffer more
            # (250 MB up: +35 MB peak against +14 MB, and slower; measured).
            while piece := source.read(CHUNK_BYTES):
                yield piece

        try:
            await obstore.put_async(
                self.store,
                received.staging_key,
                pieces(),
                attributes={
                    "Content-Type": media_type,
                    "Content-Disposition": storage.content_disposition(name),
                },
                chunk_size=PART_BYTES,
                max_concurrency=PARTS_AT_ONCE,
            )
        except BaseError as exc:
            raise _refused(exc, "store") from exc

    async def move_into_place(self, received: Received, key: str) -> None:
        # The row has committed: failing the request now would not undo it, so the move is
        # retried and, failing that, logged with both keys for an operator.
        for attempt in range(1, MOVE_ATTEMPTS + 1):
            try:
                await obstore.rename_async(self.store, received.staging_key, key)
                return
            except BaseError as exc:
                if attempt == MOVE_ATTEMPTS:
                    logger.error(
                        "staged file not moved into place",
                        extra={"staged": received.staging_key, "key": key, "error": str(exc)},
                    )
                    return
                await asyncio.sleep(0.5 * attempt)

    async def discard(self, received: Received) -> None:
        await self.delete(received.staging_key)

    async def delete(self, key: str) -> None:
        await self._delete([key])

    async def delete_folder(self, folder: str) -> None:
        keys = await self.keys(folder)
        if keys:
            await self._delete(keys)
            logger.info("removed files", extra={"folder": folder, "count": len(keys)})

    async def _delete(self, keys: list[str]) -> None:
        """Deleted, or logged: a leftover under a gone conversation is the retention job's
        to remove, and a request that has committed cannot fail for it."""
        try:
            for start in range(0, len(keys), 1000):  # S3's DeleteObjects takes 1000
                await obstore.delete_async(self.store, keys[start : start + 1000])
        except BaseError as exc:
            logger.warning("files not deleted", extra={"keys": keys[:10], "error": str(exc)})

    async def subfolders(self, folder: str) -> list[str]:
        listed = await obstore.list_with_delimiter_async(self.store, folder or None)
        names = (prefix.rstrip("/").rsplit("/", 1)[-1] for prefix in listed["common_prefixes"])
        return sorted(name for name in names if name != INCOMING)

    async def remove_staged_before(self, timestamp: float) -> int:
        cutoff = datetime.fromtimestamp(timestamp, UTC)
        stale = [
            meta["path"]
            async for batch in obstore.list(self.store, INCOMING, chunk_size=1000)
            for meta in batch
            if meta["last_modified"] < cutoff
        ]
        if stale:
            await self._delete(stale)
        return len(stale)

    async def keys(self, folder: str = "") -> list[str]:
        return sorted(
            [
                meta["path"]
                async for batch in obstore.list(self.store, folder or None, chunk_size=1000)
                for meta in batch
            ]
        )

    async def read_bytes(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self.store, key)
            return bytes(await result.bytes_async())
        except NotFoundError as exc:
            raise FileNotFoundError(key) from exc
        except BaseError as exc:
            raise _refused(exc, "read") from exc

    async def download(self, key: str, media_type: str, name: str) -> Response:
        if self.presigned_expiry is not None:
            # The object carries its type and download name (set when it was staged), so
            # the store serves it as this service would.
            url = await obstore.sign_async(self.store, "GET", key, self.presigned_expiry)
            return RedirectResponse(url, status_code=307)
        try:
            result = await obstore.get_async(self.store, key)
        except NotFoundError as exc:
            logger.error("file has a row but no bytes", extra={"key": key})
            raise FileNotFound() from exc
        except BaseError as exc:
            raise _refused(exc, "read") from exc
        return StreamingResponse(
            result.stream(min_chunk_size=PIECE_BYTES),
            media_type=media_type,
            headers={
                "Content-Length": str(result.meta["size"]),
                "Content-Disposition": storage.content_disposition(name),
            },
        )

    async def close(self) -> None:
        pass


def _spooled(source: BinaryIO, max_bytes: int) -> BinaryIO:
    """A stream that cannot seek, on disk: it is read twice (hashing, then uploading)."""
    copy = tempfile.TemporaryFile()  # noqa: SIM115 (the Received owns it from here)
    total = 0
    while chunk := source.read(CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:
            copy.close()
            raise TooLarge()
        copy.write(chunk)
    copy.seek(0)
    return copy


def _refused(exc: BaseError, action: str) -> AppError:
    text = str(exc)
    logger.warning("object store refused", extra={"action": action, "error": text[:2000]})
    if any(marker in text for marker in FULL_MARKERS):
        return InsufficientStorage("The file could not be stored: the file store is full.")
    verb = "stored" if action == "store" else "read"
    return StorageUnavailable(
        f"The file could not be {verb}: the file store did not accept the request. "
        "Try again later.",
        headers={"Retry-After": "5"},
    )
