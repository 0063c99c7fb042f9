"""Admins grant and revoke which agents their organization may use; members list them;
another organization's objects are 404 and stay untouched."""

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent, AgentVisibility, OrganizationAgent
from app.core.db import set_tenant
from app.organizations.models import Organization
from tests.clerk import FakeClerk
from tests.conftest import DatabaseUnderTest
from tests.factories import make_agent, make_org


async def org_named(session: AsyncSession, clerk_id: str) -> Organization:
    org = await session.scalar(select(Organization).where(Organization.clerk_id == clerk_id))
    assert org is not None
    return org


@pytest.fixture
async def orgs(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> dict[str, object]:
    """Organizations A and B, with an admin and a member each (provisioned by their first
    requests), a private agent each, and a platform agent."""
    for org in ("org_A", "org_B"):
        for user, role in ((f"user_admin_{org}", "admin"), (f"user_member_{org}", "member")):
            response = await client.get("/me", headers=fake_clerk.headers(user, org, role))
            assert response.status_code == 200
    a, b = await org_named(session, "org_A"), await org_named(session, "org_B")
    await set_tenant(session, a.id)
    a_private = await make_agent(session, a)
    await set_tenant(session, b.id)
    b_private = await make_agent(session, b)
    b_public = await make_agent(session, b, AgentVisibility.public)
    await set_tenant(session, None)
    return {"a": a, "b": b, "a_private": a_private, "b_private": b_private, "b_public": b_public}


def admin(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_admin_{org}", org, "admin")


def member(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_member_{org}", org, "member")


async def test_admin_grants_lists_and_revokes(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, orgs: dict[str, Agent]
) -> None:
    agent_id = orgs["a_private"].id
    first = await client.put(f"/organizations/current/agents/{agent_id}", headers=admin(fake_clerk))
    again = await client.put(f"/organizations/current/agents/{agent_id}", headers=admin(fake_clerk))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["agent"]["id"] == str(agent_id)

    listed = await client.get("/organizations/current/agents", headers=member(fake_clerk))
    assert listed.status_code == 200
    assert [grant["agent"]["id"] for grant in listed.json()] == [str(agent_id)]

    revoked = await client.delete(
        f"/organizations/current/agents/{agent_id}", headers=admin(fake_clerk)
    )
    assert revoked.status_code == 204
    listed = await client.get("/organizations/current/agents", headers=member(fake_clerk))
    assert listed.json() == []


async def test_admin_may_grant_another_organizations_public_agent(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, orgs: dict[str, Agent]
) -> None:
    response = await client.put(
        f"/organizations/current/agents/{orgs['b_public'].id}", headers=admin(fake_clerk)
    )
    assert response.status_code == 201


async def test_member_calling_an_admin_route_is_403(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, orgs: dict[str, Agent]
) -> None:
    for method in ("PUT", "DELETE"):
        response = await client.request(
            method,
            f"/organizations/current/agents/{orgs['a_private'].id}",
            headers=member(fake_clerk),
        )
        assert response.status_code == 403
        assert response.json()["type"] == "/problems/admin-required"


async def test_a_route_needing_an_organization_without_one_is_403(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    response = await client.get(
        "/organizations/current/agents", headers=fake_clerk.headers("user_no_org")
    )
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/organization-required"


async def test_organization_a_cannot_reach_organization_bs_objects(
    client: httpx.AsyncClient,
    session: AsyncSession,
    fake_clerk: FakeClerk,
    orgs: dict[str, object],
) -> None:
    """Every route so far, called with A's admin token and B's ids: 404, nothing changes."""
    b, b_private = orgs["b"], orgs["b_private"]
    assert isinstance(b, Organization) and isinstance(b_private, Agent)
    # Plain ids: a refused request rolls back the shared test session, expiring its objects.
    b_id, b_agent_id = b.id, b_private.id
    b_admin = admin(fake_clerk, "org_B")
    assert (
        await client.put(f"/organizations/current/agents/{b_agent_id}", headers=b_admin)
    ).status_code == 201

    for method in ("PUT", "DELETE"):
        response = await client.request(
            method, f"/organizations/current/agents/{b_agent_id}", headers=admin(fake_clerk)
        )
        assert response.status_code == 404, (method, response.text)
        assert response.json()["type"] == "/problems/agent-not-found"

    a_view = await client.get("/organizations/current/agents", headers=admin(fake_clerk))
    assert a_view.json() == []
    me = (await client.get("/me", headers=admin(fake_clerk))).json()
    assert [org["clerk_id"] for org in me["organizations"]] == ["org_A"]

    await set_tenant(session, b_id)
    grants = (await session.scalars(select(OrganizationAgent.agent_id))).all()
    assert grants == [b_agent_id]


async def test_revoking_an_agent_that_is_not_granted_is_404(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, orgs: dict[str, Agent]
) -> None:
    response = await client.delete(
        f"/organizations/current/agents/{orgs['a_private'].id}", headers=admin(fake_clerk)
    )
    assert response.status_code == 404


async def test_first_request_provisions_user_organization_and_membership(
    client: httpx.AsyncClient, session: AsyncSession, fake_clerk: FakeClerk
) -> None:
    response = await client.get("/me", headers=fake_clerk.headers("user_new", "org_new", "admin"))
    assert response.status_code == 200
    body = response.json()
    assert body["organization"]["role"] == "admin"
    org = await make_org(session)  # unrelated org does not show up
    assert org.clerk_id not in [o["clerk_id"] for o in body["organizations"]]
    demoted = await client.get("/me", headers=fake_clerk.headers("user_new", "org_new", "member"))
    assert demoted.json()["organization"]["role"] == "member"


@pytest.fixture(scope="session")
def platform_agents(test_database: DatabaseUnderTest) -> Iterator[list[str]]:
    with test_database.platform_agents("private", "hidden") as ids:
        yield [str(agent_id) for agent_id in ids]


async def test_the_catalogue_lists_what_an_admin_may_grant_and_whether_it_is(
    client: httpx.AsyncClient,
    session: AsyncSession,
    fake_clerk: FakeClerk,
    orgs: dict[str, object],
    platform_agents: list[str],
) -> None:
    a, b = orgs["a"], orgs["b"]
    assert isinstance(a, Organization) and isinstance(b, Organization)
    a_private, b_private, b_public = orgs["a_private"], orgs["b_private"], orgs["b_public"]
    assert isinstance(a_private, Agent) and isinstance(b_public, Agent)
    assert isinstance(b_private, Agent)
    platform, platform_hidden = platform_agents
    ids = {"a_private": str(a_private.id), "b_public": str(b_public.id), "platform": platform}
    await set_tenant(session, b.id)
    b_hidden = await make_agent(session, b, AgentVisibility.hidden)
    await set_tenant(session, a.id)
    a_hidden = await make_agent(session, a, AgentVisibility.hidden)
    session.add(OrganizationAgent(organization_id=a.id, agent_id=a_private.id))
    await session.flush()
    hidden = {platform_hidden, str(b_hidden.id), str(a_hidden.id)}

    response = await client.get("/organizations/current/agent-catalog", headers=admin(fake_clerk))
    assert response.status_code == 200, response.text
    entries = {entry["agent"]["id"]: entry for entry in response.json()}
    # Other tests' platform agents may be there too; B's private agent and hidden ones not.
    assert set(ids.values()) <= set(entries)
    assert str(b_private.id) not in entries
    assert not hidden & set(entries)
    assert {entries[ids[name]]["source"] for name in ids} == {"own", "platform", "public"}
    assert entries[ids["a_private"]]["granted"] is True
    assert entries[ids["platform"]]["granted"] is False
    assert entries[ids["b_public"]]["granted_at"] is None

    # List, then grant: the catalogue says so.
    granted = await client.put(
        f"/organizations/current/agents/{ids['platform']}", headers=admin(fake_clerk)
    )
    assert granted.status_code == 201
    again = await client.get("/organizations/current/agent-catalog", headers=admin(fake_clerk))
    assert {e["agent"]["id"]: e["granted"] for e in again.json()}[ids["platform"]] is True

    # B's admin sees B's own private agent, not A's.
    b_view = await client.get(
        "/organizations/current/agent-catalog", headers=admin(fake_clerk, "org_B")
    )
    assert ids["a_private"] not in {entry["agent"]["id"] for entry in b_view.json()}


async def test_members_cannot_read_the_catalogue(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, orgs: dict[str, object]
) -> None:
    response = await client.get("/organizations/current/agent-catalog", headers=member(fake_clerk))
    assert response.status_code == 403
