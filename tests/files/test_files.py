"""Files in conversations: upload (type from the bytes, size limit, cleaned names, one copy
per conversation), metadata, content, delete; who may do what; and no bytes without a row or
row without bytes, whatever fails. Every test runs on both storage backends: the local disk
and S3 (SeaweedFS started by the tests)."""

import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

import docx
import httpx
import pytest
from fastapi import APIRouter, FastAPI, UploadFile
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute
from app.core.errors import Conflict
from app.core.settings import Settings
from app.files import service as files_service
from app.files.backends import create_storage
from app.files.models import File
from tests.clerk import FakeClerk
from tests.conftest import DatabaseUnderTest, StorageUnderTest, client_for, running_app

MAX_BYTES = 64 * 1024
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def settings(
    test_database: DatabaseUnderTest, storage_under_test: StorageUnderTest, tmp_path: Path
) -> Settings:
    return test_database.settings(
        **storage_under_test.settings(tmp_path / "workspaces"), file_max_bytes=MAX_BYTES
    )


def alice(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers("user_alice", org, "admin")


def bob(fake_clerk: FakeClerk) -> dict[str, str]:
    return fake_clerk.headers("user_bob", "org_A", "member")


async def new_conversation(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> str:
    agent = await client.post(
        "/agents", json={"slug": f"a-{uuid.uuid4().hex[:8]}", "name": "Files"}, headers=headers
    )
    assert agent.status_code == 201, agent.text
    conversation = await client.post(
        "/conversations", json={"agent_id": agent.json()["id"], **fields}, headers=headers
    )
    assert conversation.status_code == 201, conversation.text
    return str(conversation.json()["id"])


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    conversation_id: str,
    name: str,
    content: bytes,
    declared: str = "application/octet-stream",
) -> httpx.Response:
    return await client.post(
        f"/conversations/{conversation_id}/files",
        files={"file": (name, content, declared)},
        headers=headers,
    )


async def stored_keys(settings: Settings) -> list[str]:
    """Every key the backend holds for this test, staged uploads included."""
    return await create_storage(settings).keys()


async def count_rows(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(File)) or 0


async def test_an_upload_is_stored_under_the_conversation_and_served_back(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, settings: Settings
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))
    content = b"# Holidays\n\nEveryone gets 25 days.\n"

    response = await upload(client, alice(fake_clerk), conversation_id, "handbook.md", content)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "handbook.md"
    assert body["media_type"] == "text/markdown"
    assert body["size_bytes"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["category"] == "uploads"
    [key] = await stored_keys(settings)
    parts = key.split("/")
    assert parts[2:5] == [conversation_id, "files", "uploads"]
    assert parts[5] == f"{body['id']}.md"
    assert await create_storage(settings).read_bytes(key) == content

    metadata = await client.get(f"/files/{body['id']}", headers=alice(fake_clerk))
    assert metadata.json() == body
    served = await client.get(f"/files/{body['id']}/content", headers=alice(fake_clerk))
    assert served.status_code == 200
    assert served.content == content
    assert served.headers["content-type"].startswith("text/markdown")
    assert served.headers["content-disposition"] == 'attachment; filename="handbook.md"'
    listed = await client.get(f"/conversations/{conversation_id}/files", headers=alice(fake_clerk))
    assert [item["id"] for item in listed.json()] == [body["id"]]


async def test_the_same_bytes_twice_in_a_conversation_are_stored_once(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, settings: Settings
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))
    first = await upload(client, alice(fake_clerk), conversation_id, "a.txt", b"same bytes")
    second = await upload(client, alice(fake_clerk), conversation_id, "b.txt", b"same bytes")

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert await count_rows(session) == 1
    assert len(await stored_keys(settings)) == 1


@pytest.mark.parametrize(
    ("name", "content", "media_type"),
    [
        ("report.txt", PDF, "application/pdf"),  # the bytes say PDF
        ("report.pdf", b"just some words", "text/plain"),  # the bytes say text
        ("data.json", b'{"a": [1, 2]}', "application/json"),
        ("broken.json", b'{"a": [1, ', "text/plain"),
        ("page", b"<!DOCTYPE html><html><body><p>Hi</p></body></html>", "text/html"),
        ("table.csv", b"name,days\nalice,25\n", "text/csv"),
    ],
)
async def test_the_media_type_is_decided_by_the_bytes(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, name: str, content: bytes, media_type: str
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))
    response = await upload(client, alice(fake_clerk), conversation_id, name, content, "text/plain")
    assert response.status_code == 201, response.text
    assert response.json()["media_type"] == media_type


async def test_a_docx_is_recognised(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    document = docx.Document()
    document.add_paragraph("Holidays are 25 days.")
    buffer = io.BytesIO()
    document.save(buffer)
    conversation_id = await new_conversation(client, alice(fake_clerk))
    response = await upload(client, alice(fake_clerk), conversation_id, "x", buffer.getvalue())
    assert response.json()["media_type"] == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", b"MZ\x90\x00\x03" + b"\x00" * 200),  # a Windows executable
        ("notes.txt", b"text with a NUL \x00 inside"),
        ("latin1.txt", "café".encode("latin-1")),
    ],
)
async def test_a_type_that_is_not_accepted_is_415_and_nothing_is_kept(
    client: httpx.AsyncClient,
    session: AsyncSession,
    fake_clerk: FakeClerk,
    settings: Settings,
    name: str,
    content: bytes,
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))
    response = await upload(client, alice(fake_clerk), conversation_id, name, content)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unsupported-file-type"
    assert await count_rows(session) == 0
    assert await stored_keys(settings) == []


async def test_a_file_over_the_limit_is_413_and_nothing_is_kept(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, settings: Settings
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))
    response = await upload(
        client, alice(fake_clerk), conversation_id, "big.txt", b"x" * (MAX_BYTES + 1)
    )
    assert response.status_code == 413
    assert response.json()["type"] == "/problems/file-too-large"
    assert await count_rows(session) == 0
    assert await stored_keys(settings) == []
    # A body far beyond the limit is refused before it is read.
    huge = await upload(client, alice(fake_clerk), conversation_id, "huge.txt", b"x" * 300_000)
    assert huge.status_code == 413


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.md", "report.md"),
        ("evil\x00name\x07.txt", "evilname.txt"),
        ("..", "file"),
        ("\x00\x01 ", "file"),
        ("a" * 300 + ".txt", "a" * 251 + ".txt"),
    ],
)
async def test_client_names_are_metadata_cleaned_never_paths(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, settings: Settings, sent: str, kept: str
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))
    response = await client.post(
        f"/conversations/{conversation_id}/files",
        files={"file": ("upload", f"content of {sent!r}".encode(), "text/plain")},
        data={"name": sent},
        headers=alice(fake_clerk),
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == kept
    [key] = await stored_keys(settings)
    folder, name = key.split("/")[-2:]
    assert (folder, name.split(".")[0]) == ("uploads", response.json()["id"])


async def test_delete_removes_the_row_and_then_the_bytes(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, settings: Settings
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))
    file_id = (await upload(client, alice(fake_clerk), conversation_id, "a.txt", b"a")).json()["id"]

    response = await client.delete(f"/files/{file_id}", headers=alice(fake_clerk))

    assert response.status_code == 204
    assert await count_rows(session) == 0
    assert await stored_keys(settings) == []
    assert (await client.get(f"/files/{file_id}", headers=alice(fake_clerk))).status_code == 404


async def test_shared_conversations_files_are_readable_by_members_but_not_writable(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    shared = await new_conversation(client, alice(fake_clerk), visibility="organization")
    private = await new_conversation(client, alice(fake_clerk))
    shared_file = (await upload(client, alice(fake_clerk), shared, "s.txt", b"s")).json()["id"]
    private_file = (await upload(client, alice(fake_clerk), private, "p.txt", b"p")).json()["id"]

    assert (await client.get(f"/files/{shared_file}", headers=bob(fake_clerk))).status_code == 200
    content = await client.get(f"/files/{shared_file}/content", headers=bob(fake_clerk))
    assert content.content == b"s"
    refused = await upload(client, bob(fake_clerk), shared, "b.txt", b"b")
    assert refused.status_code == 403
    assert (
        await client.delete(f"/files/{shared_file}", headers=bob(fake_clerk))
    ).status_code == 403
    for path in [f"/files/{private_file}", f"/files/{private_file}/content"]:
        assert (await client.get(path, headers=bob(fake_clerk))).status_code == 404
    assert (await upload(client, bob(fake_clerk), private, "b.txt", b"b")).status_code == 404


async def test_another_organizations_files_and_conversations_are_404(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, settings: Settings
) -> None:
    theirs = await new_conversation(client, alice(fake_clerk, "org_B"))
    file_id = (await upload(client, alice(fake_clerk, "org_B"), theirs, "b.txt", b"B")).json()["id"]
    mine = alice(fake_clerk, "org_A")

    for method, path in [
        ("GET", f"/files/{file_id}"),
        ("GET", f"/files/{file_id}/content"),
        ("DELETE", f"/files/{file_id}"),
        ("GET", f"/conversations/{theirs}/files"),
    ]:
        response = await client.request(method, path, headers=mine)
        assert response.status_code == 404, (method, path)
    assert (await upload(client, mine, theirs, "a.txt", b"A")).status_code == 404
    assert len(await stored_keys(settings)) == 1


@pytest.fixture
def failing_route(app: FastAPI) -> None:
    """A route that stores a file and then fails: what any later step of a request could do."""
    router = APIRouter(route_class=TransactionalRoute)

    @router.post("/_test/conversations/{conversation_id}/files-then-fail")
    async def upload_then_fail(
        conversation_id: uuid.UUID,
        file: UploadFile,
        session: SessionDep,
        principal: OrganizationPrincipalDep,
    ) -> None:
        settings = app.state.settings
        await files_service.upload(
            session,
            principal,
            conversation_id,
            file.file,
            "a.txt",
            app.state.storage,
            settings.file_max_bytes,
        )
        raise Conflict("Something after the upload failed.")

    app.include_router(router)


@pytest.mark.usefixtures("failing_route")
async def test_a_request_that_fails_after_storing_leaves_neither_row_nor_bytes(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, settings: Settings
) -> None:
    conversation_id = await new_conversation(client, alice(fake_clerk))
    response = await client.post(
        f"/_test/conversations/{conversation_id}/files-then-fail",
        files={"file": ("a.txt", b"doomed", "text/plain")},
        headers=alice(fake_clerk),
    )
    assert response.status_code == 409
    assert await count_rows(session) == 0
    assert await stored_keys(settings) == []


@pytest.fixture
def presigned_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"s3_presigned_download_seconds": 60})


@pytest.mark.parametrize("storage_under_test", ["s3"], indirect=True)
async def test_with_presigned_downloads_the_store_serves_the_bytes_with_type_and_name(
    presigned_settings: Settings, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    content = "# Congés\n\nVingt-cinq jours.\n".encode()
    async with (
        running_app(presigned_settings, session, fake_clerk.transport) as app,
        client_for(app) as client,
    ):
        conversation_id = await new_conversation(client, alice(fake_clerk))
        uploaded = await upload(client, alice(fake_clerk), conversation_id, "congés.md", content)
        file_id = uploaded.json()["id"]
        served = await client.get(f"/files/{file_id}/content", headers=alice(fake_clerk))

    assert served.status_code == 307
    location = served.headers["location"]
    assert "X-Amz-Expires=60" in location
    async with httpx.AsyncClient() as outside:  # no credentials: the URL is enough
        fetched = await outside.get(location)
    assert fetched.status_code == 200
    assert fetched.content == content
    assert fetched.headers["content-type"] == "text/markdown"
    assert fetched.headers["content-disposition"] == "attachment; filename*=utf-8''cong%C3%A9s.md"


@pytest.fixture
def refused_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"s3_secret_access_key": SecretStr("not-the-secret")}  # the store says 403
    )


@pytest.mark.parametrize("storage_under_test", ["s3"], indirect=True)
async def test_an_object_store_that_refuses_is_503_and_leaves_nothing(
    settings: Settings, refused_settings: Settings, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    async with (
        running_app(refused_settings, session, fake_clerk.transport) as app,
        client_for(app) as client,
    ):
        conversation_id = await new_conversation(client, alice(fake_clerk))
        response = await upload(client, alice(fake_clerk), conversation_id, "a.txt", b"a")

    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/storage-unavailable"
    assert response.headers["retry-after"] == "5"
    assert await count_rows(session) == 0
    assert await stored_keys(settings) == []
