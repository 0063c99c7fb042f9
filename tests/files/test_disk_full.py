"""Uploads onto storage that is really full. Local: WORKSPACES_DIR is a tmpfs mounted for the
test with a tiny size or few inodes, so the kernel itself answers ENOSPC; the upload is a 507
problem, with no row and no bytes left behind (not even under `.incoming/`), and the space
is given back for the next upload. S3: SeaweedFS on a tmpfs of a few megabytes, which answers
a 500 InternalError when its disk is full (as most stores do; MinIO's XMinioStorageFull would
be a 507); the upload is a 503 problem, with no row and no object left behind."""

import base64
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentKnowledgeSource
from app.core.settings import Settings
from tests.clerk import FakeClerk
from tests.conftest import DatabaseUnderTest
from tests.files.test_files import alice, count_rows, new_conversation, stored_keys, upload
from tests.seaweedfs import S3Server, running_seaweedfs

DISK_BYTES = 256 * 1024
S3_DISK_BYTES = 8 * 1024 * 1024  # SeaweedFS starts in it, with about 6 MB left for files
FULL_BUCKET = "full"


@contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    folder.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here, so no disk can be filled: {mounted.stderr}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.fixture
def small_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_BYTES, or with the inodes `request.param` gives (root, `.incoming/`,
    the upload and one folder of the file's path: the next folder finds none)."""
    options = f"size={DISK_BYTES}"
    if getattr(request, "param", None):
        options += f",nr_inodes={request.param}"
    with tmpfs(tmp_path / "workspaces", options) as folder:
        yield folder


@pytest.fixture(scope="module")
def full_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS on a disk of S3_DISK_BYTES: a file larger than that fills it."""
    folder = tmp_path_factory.mktemp("full-s3")
    with tmpfs(folder, f"size={S3_DISK_BYTES}"), running_seaweedfs(folder) as server:
        server.create_bucket(FULL_BUCKET)
        yield server


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(
    test_database: DatabaseUnderTest, backend: str, request: pytest.FixtureRequest
) -> Settings:
    if backend == "local":
        return test_database.settings(workspaces_dir=request.getfixturevalue("small_disk"))
    server: S3Server = request.getfixturevalue("full_s3_server")
    return test_database.settings(
        storage_backend="s3",
        s3_bucket=FULL_BUCKET,
        s3_endpoint_url=server.endpoint_url,
        s3_access_key_id=server.access_key,
        s3_secret_access_key=server.secret_key,
        s3_key_prefix=f"test-{uuid.uuid4().hex[:12]}",
    )


def too_big(settings: Settings) -> bytes:
    """Text beyond the free space of the backend's disk: random on S3, which SeaweedFS
    would otherwise compress into the space left."""
    if settings.storage_backend == "local":
        return b"words " * DISK_BYTES
    return base64.b64encode(os.urandom(S3_DISK_BYTES))


def assert_insufficient_storage(response: httpx.Response, settings: Settings) -> None:
    """507 for a full disk; 503 for an object store that answers 500 when full (SeaweedFS)."""
    expected = (
        (507, "insufficient-storage")
        if settings.storage_backend == "local"
        else (503, "storage-unavailable")
    )
    assert (response.status_code, response.json()["type"]) == (
        expected[0],
        f"/problems/{expected[1]}",
    ), response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_upload_larger_than_the_free_space_is_507_and_leaves_nothing(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, settings: Settings
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))

    response = await upload(
        client, alice(fake_clerk), conversation_id, "big.txt", too_big(settings)
    )

    assert_insufficient_storage(response, settings)
    assert await count_rows(session) == 0
    assert await stored_keys(settings) == []
    if settings.storage_backend == "local":
        # The partial file's space was given back. (An object store keeps the parts of an
        # unfinished multipart upload until its lifecycle rule aborts it: README.)
        after = await upload(client, alice(fake_clerk), conversation_id, "small.txt", b"fits")
        assert after.status_code == 201, after.text


@pytest.mark.parametrize("backend", ["local"])  # inodes are the local disk's
@pytest.mark.parametrize("small_disk", [4], indirect=True)
async def test_no_inode_left_for_the_files_folder_is_507_and_leaves_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    fake_clerk: FakeClerk,
    settings: Settings,
    small_disk: Path,
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))

    response = await upload(client, alice(fake_clerk), conversation_id, "a.txt", b"small")

    assert_insufficient_storage(response, settings)
    assert await count_rows(session) == 0
    assert await stored_keys(settings) == []


async def test_a_knowledge_file_larger_than_the_free_space_is_507_and_leaves_nothing(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, settings: Settings
) -> None:
    agent = await client.post(
        "/agents",
        json={"slug": f"a-{uuid.uuid4().hex[:8]}", "name": "Knows"},
        headers=alice(fake_clerk),
    )
    response = await client.post(
        f"/agents/{agent.json()['id']}/knowledge-sources/files",
        files={"file": ("big.md", b"# Words\n" + too_big(settings), "text/markdown")},
        headers=alice(fake_clerk),
    )

    assert_insufficient_storage(response, settings)
    sources = select(func.count()).select_from(AgentKnowledgeSource)
    assert await session.scalar(sources) == 0
    assert await stored_keys(settings) == []
