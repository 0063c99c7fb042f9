"""Uploads onto a disk that is really full: WORKSPACES_DIR is a tmpfs mounted for the test with
a tiny size or few inodes, so the kernel itself answers ENOSPC. The upload is a 507
problem, with no row and no bytes left behind (not even under `.incoming/`), and the space
is given back for the next upload."""

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentKnowledgeSource
from app.core.settings import Settings
from tests.clerk import FakeClerk
from tests.conftest import DatabaseUnderTest
from tests.files.test_files import alice, count_rows, new_conversation, stored_files, upload

DISK_BYTES = 256 * 1024


@pytest.fixture
def small_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_BYTES, or with the inodes `request.param` gives (root, `.incoming/`,
    the upload and one folder of the file's path: the next folder finds none)."""
    folder = tmp_path / "workspaces"
    folder.mkdir()
    options = f"size={DISK_BYTES}"
    if getattr(request, "param", None):
        options += f",nr_inodes={request.param}"
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
def settings(test_database: DatabaseUnderTest, small_disk: Path) -> Settings:
    return test_database.settings(workspaces_dir=small_disk)


def assert_insufficient_storage(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/insufficient-storage"


async def test_an_upload_larger_than_the_free_space_is_507_and_leaves_nothing(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, settings: Settings
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))

    response = await upload(
        client, alice(fake_clerk), conversation_id, "big.txt", b"words " * DISK_BYTES
    )

    assert_insufficient_storage(response)
    assert await count_rows(session) == 0
    assert stored_files(settings) == []
    # The partial file's space was given back.
    after = await upload(client, alice(fake_clerk), conversation_id, "small.txt", b"fits")
    assert after.status_code == 201, after.text


@pytest.mark.parametrize("small_disk", [4], indirect=True)
async def test_no_inode_left_for_the_files_folder_is_507_and_leaves_nothing(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, settings: Settings
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))

    response = await upload(client, alice(fake_clerk), conversation_id, "a.txt", b"small")

    assert_insufficient_storage(response)
    assert await count_rows(session) == 0
    assert stored_files(settings) == []


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
        files={"file": ("big.md", b"# Words\n" + b"words " * DISK_BYTES, "text/markdown")},
        headers=alice(fake_clerk),
    )

    assert_insufficient_storage(response)
    sources = select(func.count()).select_from(AgentKnowledgeSource)
    assert await session.scalar(sources) == 0
    assert stored_files(settings) == []
