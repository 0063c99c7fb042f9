"""Conversations: create, list (newest first, cursor pages), share, rename, delete, and the
thread in AG-UI's message format."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import Conversation, Message, MessageRole
from app.core.db import set_tenant
from app.core.settings import Settings
from tests.clerk import FakeClerk


def alice(fake_clerk: FakeClerk) -> dict[str, str]:
    return fake_clerk.headers("user_alice", "org_A", "member")


def bob(fake_clerk: FakeClerk) -> dict[str, str]:
    return fake_clerk.headers("user_bob", "org_A", "member")


def admin(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_admin_{org}", org, "admin")


@pytest.fixture
async def agent_id(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> str:
    response = await client.post(
        "/agents", json={"slug": "chat", "name": "Chat"}, headers=admin(fake_clerk)
    )
    assert response.status_code == 201
    return str(response.json()["id"])


async def start(
    client: httpx.AsyncClient, headers: dict[str, str], agent_id: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/conversations", json={"agent_id": agent_id, **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored(session: AsyncSession, conversation: dict[str, Any]) -> Conversation:
    """The row of a conversation the API returned (in the tenant the request set). By its id
    alone, which only a test may do: the key is (organization_id, id)."""
    row = await session.scalar(
        select(Conversation).where(Conversation.id == uuid.UUID(conversation["id"]))
    )
    assert row is not None
    return row


async def test_list_is_newest_activity_first_in_cursor_pages(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, agent_id: str
) -> None:
    ids = [
        (await start(client, alice(fake_clerk), agent_id, title=f"t{i}"))["id"] for i in range(5)
    ]
    # Activity order differs from creation order: the third was touched last.
    now = datetime.now(UTC)
    for offset, conversation_id in enumerate(ids):
        await session.execute(
            update(Conversation)
            .where(Conversation.id == uuid.UUID(conversation_id))
            .values(last_activity_at=now - timedelta(minutes=10 - offset))
        )
    await session.execute(
        update(Conversation)
        .where(Conversation.id == uuid.UUID(ids[2]))
        .values(last_activity_at=now)
    )
    expected = [ids[2], ids[4], ids[3], ids[1], ids[0]]

    seen: list[str] = []
    cursor = None
    for _ in range(3):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/conversations", params=params, headers=alice(fake_clerk))).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert cursor is None


async def test_private_conversations_are_invisible_to_others(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_id: str
) -> None:
    private = await start(client, alice(fake_clerk), agent_id)
    path = f"/conversations/{private['id']}"
    assert (await client.get(path, headers=bob(fake_clerk))).status_code == 404
    assert (await client.get(f"{path}/messages", headers=bob(fake_clerk))).status_code == 404
    assert (await client.get("/conversations", headers=bob(fake_clerk))).json()["items"] == []


async def test_shared_conversations_are_readable_but_not_writable_by_members(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_id: str
) -> None:
    shared = await start(client, alice(fake_clerk), agent_id, visibility="organization")
    path = f"/conversations/{shared['id']}"
    assert (await client.get(path, headers=bob(fake_clerk))).status_code == 200
    listed = await client.get("/conversations", params={"shared": True}, headers=bob(fake_clerk))
    assert [item["id"] for item in listed.json()["items"]] == [shared["id"]]
    rename = await client.patch(path, json={"title": "mine now"}, headers=bob(fake_clerk))
    delete = await client.delete(path, headers=bob(fake_clerk))
    assert (rename.status_code, delete.status_code) == (403, 403)
    assert (await client.get(path, headers=alice(fake_clerk))).json()["title"] == ""


async def test_owner_renames_and_shares(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_id: str
) -> None:
    conversation = await start(client, alice(fake_clerk), agent_id)
    response = await client.patch(
        f"/conversations/{conversation['id']}",
        json={"title": "Quarterly numbers", "visibility": "organization"},
        headers=alice(fake_clerk),
    )
    assert response.status_code == 200
    assert response.json()["title"] == "Quarterly numbers"
    assert response.json()["visibility"] == "organization"


async def test_owner_deletes_with_messages_and_files(
    client: httpx.AsyncClient,
    session: AsyncSession,
    fake_clerk: FakeClerk,
    agent_id: str,
    settings: Settings,
) -> None:
    conversation = await start(client, alice(fake_clerk), agent_id)
    row = await stored(session, conversation)
    org_id, user_id, conversation_id = row.organization_id, row.user_id, row.id
    await set_tenant(session, org_id)
    session.add(
        Message(
            organization_id=org_id,
            conversation_id=conversation_id,
            role=MessageRole.user,
            content="hi",
        )
    )
    await session.flush()
    folder = Path(settings.workspaces_dir) / str(org_id) / str(user_id) / str(conversation_id)
    (folder / "files" / "uploads").mkdir(parents=True)
    (folder / "files" / "uploads" / "x.txt").write_text("x")

    response = await client.delete(f"/conversations/{conversation_id}", headers=alice(fake_clerk))
    assert response.status_code == 204
    await set_tenant(session, org_id)
    remaining = await session.scalars(
        select(Message.id).where(Message.conversation_id == conversation_id)
    )
    assert remaining.all() == []
    assert not folder.exists()


async def test_messages_come_back_in_ag_ui_format_oldest_first(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk, agent_id: str
) -> None:
    conversation = await start(client, alice(fake_clerk), agent_id)
    row = await stored(session, conversation)
    org_id, conversation_id = row.organization_id, row.id
    await set_tenant(session, org_id)
    base = datetime.now(UTC)
    rows = [
        Message(role=MessageRole.user, content="Weather in Oslo?", external_id="m1"),
        Message(
            role=MessageRole.assistant,
            content="",
            parts=[
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "weather",
                    "arguments": '{"city": "Oslo"}',
                }
            ],
            external_id="m2",
        ),
        Message(
            role=MessageRole.tool, content='{"temp": 3}', tool_call_id="call_1", external_id="m3"
        ),
        Message(role=MessageRole.assistant, content="3 degrees."),
    ]
    for offset, message in enumerate(rows):
        message.organization_id = org_id
        message.conversation_id = conversation_id
        message.created_at = base + timedelta(seconds=offset)
        session.add(message)
    await session.flush()
    last_id = str(rows[-1].id)

    first = await client.get(
        f"/conversations/{conversation_id}/messages", params={"limit": 3}, headers=alice(fake_clerk)
    )
    assert first.status_code == 200
    page = first.json()
    assert page["items"] == [
        {"id": "m1", "role": "user", "content": "Weather in Oslo?"},
        {
            "id": "m2",
            "role": "assistant",
            "toolCalls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"id": "m3", "role": "tool", "content": '{"temp": 3}', "toolCallId": "call_1"},
    ]
    rest = await client.get(
        f"/conversations/{conversation_id}/messages",
        params={"cursor": page["next_cursor"]},
        headers=alice(fake_clerk),
    )
    assert rest.json() == {
        "items": [{"id": last_id, "role": "assistant", "content": "3 degrees."}],
        "next_cursor": None,
    }


async def test_a_conversation_needs_a_usable_agent(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    other = await client.post(
        "/agents", json={"slug": "theirs", "name": "Theirs"}, headers=admin(fake_clerk, "org_B")
    )
    response = await client.post(
        "/conversations", json={"agent_id": other.json()["id"]}, headers=alice(fake_clerk)
    )
    assert response.status_code == 404
    assert (await client.get("/conversations", headers=alice(fake_clerk))).json()["items"] == []


async def test_another_organizations_conversation_is_404_and_untouched(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_id: str
) -> None:
    theirs = await start(client, alice(fake_clerk), agent_id, visibility="organization")
    outsider = admin(fake_clerk, "org_B")
    path = f"/conversations/{theirs['id']}"
    for method, body in (("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)):
        response = await client.request(method, path, json=body, headers=outsider)
        assert response.status_code == 404, method
    assert (await client.get(f"{path}/messages", headers=outsider)).status_code == 404
    assert (await client.get(path, headers=alice(fake_clerk))).json()["title"] == ""


async def test_a_forged_cursor_is_400(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    response = await client.get(
        "/conversations", params={"cursor": "not-a-cursor"}, headers=alice(fake_clerk)
    )
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/invalid-cursor"


@pytest.mark.parametrize("field", ["title", "visibility"])
async def test_null_for_a_conversation_field_is_a_422_naming_it(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_id: str, field: str
) -> None:
    conversation = await start(client, alice(fake_clerk), agent_id, title="Kept")
    response = await client.patch(
        f"/conversations/{conversation['id']}", json={field: None}, headers=alice(fake_clerk)
    )
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["errors"]] == [field]
    read = await client.get(f"/conversations/{conversation['id']}", headers=alice(fake_clerk))
    assert read.json()["title"] == "Kept"
