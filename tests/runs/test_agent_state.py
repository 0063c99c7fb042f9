"""Per-user agent state: read, replace, JSON Patch, and optimistic concurrency."""

import httpx
import pytest

from tests.clerk import FakeClerk

PATCH = "application/json-patch+json"


def user(fake_clerk: FakeClerk, name: str = "user_state_a", org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(name, org, "admin")


@pytest.fixture
async def agent_path(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> str:
    response = await client.post(
        "/agents", json={"slug": "stateful", "name": "Stateful"}, headers=user(fake_clerk)
    )
    assert response.status_code == 201
    return f"/agents/{response.json()['id']}/state"


async def test_state_starts_empty_at_version_0(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_path: str
) -> None:
    response = await client.get(agent_path, headers=user(fake_clerk))
    assert response.status_code == 200
    assert response.json() == {"state": {}, "version": 0}
    assert response.headers["etag"] == '"0"'


async def test_replace_then_patch_bumps_the_version(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_path: str
) -> None:
    put = await client.put(
        agent_path,
        json={"state": {"step": 1, "items": []}},
        headers={**user(fake_clerk), "If-Match": '"0"'},
    )
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1
    patch = await client.patch(
        agent_path,
        content=b'[{"op": "replace", "path": "/step", "value": 2},'
        b' {"op": "add", "path": "/items/-", "value": "milk"}]',
        headers={**user(fake_clerk), "If-Match": put.headers["etag"], "content-type": PATCH},
    )
    assert patch.status_code == 200, patch.text
    assert patch.json() == {"state": {"step": 2, "items": ["milk"]}, "version": 2}
    read = await client.get(agent_path, headers=user(fake_clerk))
    assert read.json() == patch.json()


async def test_a_stale_write_is_409_and_changes_nothing(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_path: str
) -> None:
    await client.put(agent_path, json={"state": {"v": "first"}}, headers=user(fake_clerk))
    await client.put(agent_path, json={"state": {"v": "second"}}, headers=user(fake_clerk))
    stale_put = await client.put(
        agent_path,
        json={"state": {"v": "stale"}},
        headers={**user(fake_clerk), "If-Match": '"1"'},
    )
    stale_patch = await client.patch(
        agent_path,
        content=b'[{"op": "add", "path": "/x", "value": 1}]',
        headers={**user(fake_clerk), "If-Match": '"1"', "content-type": PATCH},
    )
    for response in (stale_put, stale_patch):
        assert response.status_code == 409
        assert response.json()["type"] == "/problems/stale-agent-state"
        assert response.json()["current_version"] == 2
    read = await client.get(agent_path, headers=user(fake_clerk))
    assert read.json() == {"state": {"v": "second"}, "version": 2}


async def test_creating_when_a_state_exists_is_stale(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_path: str
) -> None:
    await client.put(agent_path, json={"state": {"a": 1}}, headers=user(fake_clerk))
    again = await client.put(
        agent_path, json={"state": {"a": 2}}, headers={**user(fake_clerk), "If-Match": '"0"'}
    )
    assert again.status_code == 409


async def test_an_invalid_patch_is_422_and_changes_nothing(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_path: str
) -> None:
    await client.put(agent_path, json={"state": {"a": 1}}, headers=user(fake_clerk))
    for body in (
        b'[{"op": "remove", "path": "/missing"}]',
        b'[{"op": "explode", "path": "/a"}]',
        b'[{"op": "replace", "path": "", "value": [1, 2]}]',
    ):
        response = await client.patch(
            agent_path, content=body, headers={**user(fake_clerk), "content-type": PATCH}
        )
        assert response.status_code == 422, body
    read = await client.get(agent_path, headers=user(fake_clerk))
    assert read.json() == {"state": {"a": 1}, "version": 1}


async def test_a_malformed_if_match_is_400(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_path: str
) -> None:
    response = await client.put(
        agent_path, json={"state": {}}, headers={**user(fake_clerk), "If-Match": "yesterday"}
    )
    assert response.status_code == 400


async def test_state_is_per_user(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_path: str
) -> None:
    await client.put(agent_path, json={"state": {"mine": True}}, headers=user(fake_clerk))
    other = await client.get(agent_path, headers=user(fake_clerk, "user_state_b"))
    assert other.json() == {"state": {}, "version": 0}


async def test_another_organizations_agent_state_is_404(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent_path: str
) -> None:
    outsider = user(fake_clerk, "user_state_c", "org_B")
    assert (await client.get(agent_path, headers=outsider)).status_code == 404
    put = await client.put(agent_path, json={"state": {"x": 1}}, headers=outsider)
    assert put.status_code == 404
    mine = await client.get(agent_path, headers=user(fake_clerk))
    assert mine.json()["version"] == 0
