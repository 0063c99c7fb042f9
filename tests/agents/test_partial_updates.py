"""PATCH bodies: a field left out stays as it is; an explicit `null` is a 422 that names the
field, except where null means something (a quick task's `schedule: null` stops it). Never a
500, and nothing changes."""

from typing import Any

import httpx
import pytest

from tests.clerk import FakeClerk


def admin(fake_clerk: FakeClerk) -> dict[str, str]:
    return fake_clerk.headers("user_admin_org_A", "org_A", "admin")


@pytest.fixture
async def agent(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> dict[str, Any]:
    response = await client.post(
        "/agents",
        json={"slug": "patched", "name": "Patched", "capabilities": ["search_knowledge"]},
        headers=admin(fake_clerk),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def refused_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [error["loc"][-1] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    "field",
    [
        "name",
        "description",
        "instructions",
        "model_settings",
        "embedding_model",
        "retrieval_settings",
        "capabilities",
        "visibility",
    ],
)
async def test_null_for_an_agent_field_is_a_422_naming_it(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent: dict[str, Any], field: str
) -> None:
    response = await client.patch(
        f"/agents/{agent['id']}", json={field: None}, headers=admin(fake_clerk)
    )
    assert refused_fields(response) == [field]
    unchanged = await client.get(f"/agents/{agent['id']}", headers=admin(fake_clerk))
    assert unchanged.json() == agent


async def test_fields_left_out_of_an_agent_patch_stay(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent: dict[str, Any]
) -> None:
    response = await client.patch(
        f"/agents/{agent['id']}", json={"description": "New"}, headers=admin(fake_clerk)
    )
    assert response.status_code == 200
    changed = response.json()
    assert changed["description"] == "New"
    assert changed["name"] == agent["name"]
    assert changed["capabilities"] == ["search_knowledge"]


@pytest.fixture
async def task_path(client: httpx.AsyncClient, fake_clerk: FakeClerk, agent: dict[str, Any]) -> str:
    response = await client.post(
        f"/agents/{agent['id']}/quick-tasks",
        json={"name": "Daily", "prompt": "Summarise.", "schedule": "0 9 * * *"},
        headers=admin(fake_clerk),
    )
    assert response.status_code == 201, response.text
    return f"/agents/{agent['id']}/quick-tasks/{response.json()['id']}"


@pytest.mark.parametrize("field", ["name", "prompt", "parameters", "schedule_timezone", "enabled"])
async def test_null_for_a_quick_task_field_is_a_422_naming_it(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, task_path: str, field: str
) -> None:
    response = await client.patch(task_path, json={field: None}, headers=admin(fake_clerk))
    assert refused_fields(response) == [field]


async def test_a_null_schedule_stops_the_quick_task(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, task_path: str
) -> None:
    response = await client.patch(task_path, json={"schedule": None}, headers=admin(fake_clerk))
    assert response.status_code == 200, response.text
    assert response.json()["schedule"] is None
    assert response.json()["next_run_at"] is None


async def test_a_null_time_zone_on_creation_is_a_422(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, agent: dict[str, Any]
) -> None:
    response = await client.post(
        f"/agents/{agent['id']}/quick-tasks",
        json={"name": "Daily", "prompt": "Summarise.", "schedule_timezone": None},
        headers=admin(fake_clerk),
    )
    assert refused_fields(response) == ["schedule_timezone"]
