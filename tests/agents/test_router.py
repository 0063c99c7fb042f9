"""Agents: admins create and edit their organization's agents; everyone uses what is granted;
the platform's agents are read-only; another organization's agents are 404."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app.cli import main as ajc
from app.core import migrations
from app.core.settings import get_settings
from tests.clerk import FakeClerk
from tests.conftest import DatabaseUnderTest

SEED = Path(__file__).resolve().parents[2] / "app" / "agents" / "seed.json"

NEW_AGENT = {
    "slug": "support-bot",
    "name": "Support bot",
    "description": "Answers support questions",
    "instructions": "Be kind.",
    "model_settings": {"model": "gpt-4o-mini", "temperature": 0.2},
    "retrieval_settings": {"top_k": 3, "min_score": 0.1},
    "capabilities": ["search_knowledge"],
    "visibility": "private",
}


def admin(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_admin_{org}", org, "admin")


def member(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_member_{org}", org, "member")


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **overrides: Any
) -> httpx.Response:
    return await client.post("/agents", json={**NEW_AGENT, **overrides}, headers=headers)


async def test_admin_creates_an_agent_that_the_organization_can_use_at_once(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    response = await create(client, admin(fake_clerk))
    assert response.status_code == 201, response.text
    agent = response.json()
    assert agent["model_settings"]["model"] == "gpt-4o-mini"
    assert agent["capabilities"] == ["search_knowledge"]

    listed = await client.get("/agents", headers=member(fake_clerk))
    assert [item["id"] for item in listed.json()] == [agent["id"]]
    read = await client.get(f"/agents/{agent['id']}", headers=member(fake_clerk))
    assert read.status_code == 200
    assert read.json()["instructions"] == "Be kind."


async def test_admin_updates_only_the_fields_sent(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    agent = (await create(client, admin(fake_clerk))).json()
    response = await client.patch(
        f"/agents/{agent['id']}",
        json={"name": "Renamed", "capabilities": ["read_file", "update_state"]},
        headers=admin(fake_clerk),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Renamed"
    assert body["capabilities"] == ["read_file", "update_state"]
    assert body["instructions"] == NEW_AGENT["instructions"]


async def test_admin_deletes_an_agent(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    agent = (await create(client, admin(fake_clerk))).json()
    deleted = await client.delete(f"/agents/{agent['id']}", headers=admin(fake_clerk))
    assert deleted.status_code == 204
    assert (
        await client.get(f"/agents/{agent['id']}", headers=admin(fake_clerk))
    ).status_code == 404
    assert (await client.get("/agents", headers=admin(fake_clerk))).json() == []


async def test_members_cannot_create_edit_or_delete(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    agent = (await create(client, admin(fake_clerk))).json()
    attempts = [
        await create(client, member(fake_clerk), slug="other"),
        await client.patch(
            f"/agents/{agent['id']}", json={"name": "x"}, headers=member(fake_clerk)
        ),
        await client.delete(f"/agents/{agent['id']}", headers=member(fake_clerk)),
    ]
    assert [response.status_code for response in attempts] == [403, 403, 403]


async def test_a_taken_slug_is_a_409(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    assert (await create(client, admin(fake_clerk))).status_code == 201
    again = await create(client, admin(fake_clerk))
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/agent-slug-taken"
    # Slugs are per organization.
    assert (await create(client, admin(fake_clerk, "org_B"))).status_code == 201


@pytest.mark.parametrize(
    "overrides",
    [
        {"capabilities": ["launch_missiles"]},
        {"slug": "Not A Slug"},
        {"model_settings": {"temperature": 9}},
        {"visibility": "secret"},
        {"unknown_field": 1},
    ],
)
async def test_invalid_agents_are_422_and_nothing_is_created(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, overrides: dict[str, Any]
) -> None:
    response = await create(client, admin(fake_clerk), **overrides)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/agents", headers=admin(fake_clerk))).json() == []


async def test_another_organizations_agent_is_404_and_untouched(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    b_agent = (await create(client, admin(fake_clerk, "org_B"))).json()
    for method, body in (("GET", None), ("PATCH", {"name": "taken"}), ("DELETE", None)):
        response = await client.request(
            method, f"/agents/{b_agent['id']}", json=body, headers=admin(fake_clerk)
        )
        assert response.status_code == 404, method
        assert response.json()["type"] == "/problems/agent-not-found"
    still = await client.get(f"/agents/{b_agent['id']}", headers=admin(fake_clerk, "org_B"))
    assert still.json()["name"] == NEW_AGENT["name"]


def libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="session")
def platform_agent_id(test_database: DatabaseUnderTest) -> Iterator[uuid.UUID]:
    """A platform agent, written (committed) by the owner role: the application role cannot
    write an agent without an organization. Session-scoped, so it is removed only after every
    test transaction (which may hold grants on it) has rolled back."""
    slug = f"platform-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq(test_database.owner_url), autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO agents (slug, name, visibility) VALUES (%s, 'Platform', 'public') "
            "RETURNING id",
            (slug,),
        ).fetchone()
        assert row is not None
        yield row[0]
        conn.execute("DELETE FROM agents WHERE id = %s", (row[0],))


async def test_platform_agents_are_usable_once_granted_and_read_only(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, platform_agent_id: uuid.UUID
) -> None:
    path = f"/agents/{platform_agent_id}"
    assert (await client.get(path, headers=admin(fake_clerk))).status_code == 404
    granted = await client.put(
        f"/organizations/current/agents/{platform_agent_id}", headers=admin(fake_clerk)
    )
    assert granted.status_code == 201
    assert (await client.get(path, headers=member(fake_clerk))).status_code == 200
    edit = await client.patch(path, json={"name": "x"}, headers=admin(fake_clerk))
    assert edit.status_code == 403
    assert edit.json()["type"] == "/problems/platform-agent-read-only"
    assert (await client.delete(path, headers=admin(fake_clerk))).status_code == 403


def test_ajc_seed_loads_the_platform_agents_idempotently(
    test_database: DatabaseUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    definitions = json.loads(SEED.read_text())
    with test_database.scratch_database("seed") as roles:
        owner_url = test_database.url(roles.owner, roles.database)
        migrations.upgrade(owner_url, roles.app)
        monkeypatch.setenv("DATABASE_URL", test_database.url(roles.app, roles.database))
        monkeypatch.setenv("DATABASE_OWNER_URL", owner_url)
        get_settings.cache_clear()
        try:
            ajc(["seed"])
            ajc(["seed"])
        finally:
            get_settings.cache_clear()
        with psycopg.connect(libpq(owner_url)) as conn:
            rows = conn.execute(
                "SELECT slug, owner_organization_id, capabilities FROM agents ORDER BY slug"
            ).fetchall()
    assert [row[0] for row in rows] == sorted(d["slug"] for d in definitions)
    assert all(row[1] is None for row in rows)
