"""A NUL character (PostgreSQL stores none in `text` or `jsonb`) anywhere in a request is a
422 that says where it is, before any route runs: never a 500, nothing written."""

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from tests.clerk import FakeClerk, fixture, signed_webhook

NUL = "\u0000"


def admin(fake_clerk: FakeClerk) -> dict[str, str]:
    return fake_clerk.headers("user_admin_org_A", "org_A", "admin")


@pytest.fixture
async def agent_id(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> str:
    response = await client.post(
        "/agents", json={"slug": "nul", "name": "Nul"}, headers=admin(fake_clerk)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def nul_locations(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert {error["type"] for error in errors} == {"nul_character"}
    return [error["loc"] for error in errors]


async def test_a_nul_in_an_agents_name_is_a_422_and_no_agent_is_made(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, session: AsyncSession
) -> None:
    response = await client.post(
        "/agents", json={"slug": "x", "name": f"Bad{NUL}name"}, headers=admin(fake_clerk)
    )
    assert nul_locations(response) == [["body", "name"]]
    # Organizations' agents: platform agents other tests committed are visible to all.
    owned = select(func.count()).select_from(Agent).where(Agent.owner_organization_id.is_not(None))
    assert await session.scalar(owned) == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        ("PATCH", "", {"model_settings": {"model": f"gpt{NUL}"}}, ["model_settings", "model"]),
        ("PUT", "/state", {"state": {"notes": ["ok", f"a{NUL}b"]}}, ["state", "notes", 1]),
        ("PUT", "/state", {"state": {f"key{NUL}": 1}}, ["state", f"key{NUL}"]),
        (
            "POST",
            "/quick-tasks",
            {"name": "T", "prompt": "P", "parameters": {"title": NUL}},
            ["parameters", "title"],
        ),
    ],
)
async def test_a_nul_inside_a_json_document_is_a_422_naming_it(
    client: httpx.AsyncClient,
    fake_clerk: FakeClerk,
    agent_id: str,
    method: str,
    path: str,
    body: dict[str, Any],
    where: list[Any],
) -> None:
    response = await client.request(
        method, f"/agents/{agent_id}{path}", json=body, headers=admin(fake_clerk)
    )
    assert nul_locations(response) == [["body", *where]]


async def test_a_nul_in_a_json_patch_is_a_422(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_id: str
) -> None:
    response = await client.patch(
        f"/agents/{agent_id}/state",
        content=json.dumps([{"op": "add", "path": "/a", "value": NUL}]),
        headers={**admin(fake_clerk), "content-type": "application/json-patch+json"},
    )
    assert nul_locations(response) == [["body", 0, "value"]]


async def test_a_nul_in_a_message_of_a_run_is_a_422(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_id: str
) -> None:
    run = {
        "threadId": str(uuid.uuid4()),
        "runId": str(uuid.uuid4()),
        "state": {},
        "messages": [{"id": "m1", "role": "user", "content": f"Hi{NUL}"}],
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }
    response = await client.post(f"/agents/{agent_id}/runs", json=run, headers=admin(fake_clerk))
    assert nul_locations(response) == [["body", "messages", 0, "content"]]


async def test_a_nul_in_a_conversation_title_and_in_a_query_is_a_422(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_id: str
) -> None:
    created = await client.post(
        "/conversations", json={"agent_id": agent_id, "title": NUL}, headers=admin(fake_clerk)
    )
    assert nul_locations(created) == [["body", "title"]]
    listed = await client.get("/conversations?cursor=a%00b", headers=admin(fake_clerk))
    assert nul_locations(listed) == [["query", "cursor"]]


async def test_an_escaped_backslash_before_u0000_is_not_a_nul(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    response = await client.post(
        "/agents", json={"slug": "y", "name": "literally \\u0000"}, headers=admin(fake_clerk)
    )
    assert response.status_code == 201
    assert response.json()["name"] == "literally \\u0000"


async def test_a_signed_webhook_carrying_a_nul_is_a_422_and_not_recorded(
    client: httpx.AsyncClient,
) -> None:
    payload = fixture("user.created")
    payload["data"]["first_name"] = f"Ada{NUL}"
    body, headers = signed_webhook(payload)
    response = await client.post("/webhooks/clerk", content=body, headers=headers)
    assert nul_locations(response) == [["body", "data", "first_name"]]
