"""Quick tasks: admins set them up (optionally on a cron schedule); members list them."""

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.agents.quick_tasks import next_run_at
from tests.clerk import FakeClerk


def admin(fake_clerk: FakeClerk, org: str = "org_A") -> dict[str, str]:
    return fake_clerk.headers(f"user_admin_{org}", org, "admin")


def member(fake_clerk: FakeClerk) -> dict[str, str]:
    return fake_clerk.headers("user_member_org_A", "org_A", "member")


@pytest.fixture
async def tasks_path(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> str:
    response = await client.post(
        "/agents", json={"slug": "reporter", "name": "Reporter"}, headers=admin(fake_clerk)
    )
    return f"/agents/{response.json()['id']}/quick-tasks"


TASK: dict[str, Any] = {
    "name": "Weekly summary",
    "prompt": "Summarise this week's open tickets for {team}.",
    "parameters": {"type": "object", "properties": {"team": {"type": "string"}}},
}


async def test_admin_creates_and_members_list(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, tasks_path: str
) -> None:
    created = await client.post(tasks_path, json=TASK, headers=admin(fake_clerk))
    assert created.status_code == 201, created.text
    assert created.json()["next_run_at"] is None
    listed = await client.get(tasks_path, headers=member(fake_clerk))
    assert [task["name"] for task in listed.json()] == ["Weekly summary"]


async def test_a_schedule_runs_for_the_admin_who_set_it_from_the_next_tick(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, tasks_path: str
) -> None:
    created = await client.post(
        tasks_path,
        json={**TASK, "schedule": "0 9 * * 1-5", "schedule_timezone": "Europe/Oslo"},
        headers=admin(fake_clerk),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    me = (await client.get("/me", headers=admin(fake_clerk))).json()
    assert body["scheduled_by_user_id"] == me["user"]["id"]
    upcoming = datetime.fromisoformat(body["next_run_at"])
    assert upcoming > datetime.now(UTC)
    assert upcoming.astimezone(UTC).hour in (7, 8)  # 09:00 in Oslo, summer or winter

    unscheduled = await client.patch(
        f"{tasks_path}/{body['id']}", json={"schedule": None}, headers=admin(fake_clerk)
    )
    assert unscheduled.json()["next_run_at"] is None
    assert unscheduled.json()["scheduled_by_user_id"] is None


def test_next_run_follows_the_time_zone() -> None:
    after = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # a Wednesday
    assert next_run_at("0 9 * * *", "America/New_York", after) == datetime(
        2026, 7, 1, 13, 0, tzinfo=UTC
    )
    assert next_run_at(None, "UTC", after) is None


@pytest.mark.parametrize(
    "overrides",
    [{"schedule": "every monday"}, {"schedule_timezone": "Mars/Olympus"}, {"prompt": ""}],
)
async def test_invalid_quick_tasks_are_422(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, tasks_path: str, overrides: dict[str, Any]
) -> None:
    response = await client.post(tasks_path, json={**TASK, **overrides}, headers=admin(fake_clerk))
    assert response.status_code == 422
    assert (await client.get(tasks_path, headers=admin(fake_clerk))).json() == []


async def test_names_are_unique_per_agent(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, tasks_path: str
) -> None:
    assert (await client.post(tasks_path, json=TASK, headers=admin(fake_clerk))).status_code == 201
    again = await client.post(tasks_path, json=TASK, headers=admin(fake_clerk))
    assert again.status_code == 409


async def test_renaming_to_a_taken_name_is_a_409_and_changes_nothing(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, tasks_path: str
) -> None:
    """Found by fuzzing: the rename was flushed outside its savepoint, a 500."""
    assert (await client.post(tasks_path, json=TASK, headers=admin(fake_clerk))).status_code == 201
    other = await client.post(tasks_path, json={**TASK, "name": "Other"}, headers=admin(fake_clerk))
    renamed = await client.patch(
        f"{tasks_path}/{other.json()['id']}",
        json={"name": TASK["name"], "enabled": False},
        headers=admin(fake_clerk),
    )
    assert renamed.status_code == 409, renamed.text
    assert renamed.json()["type"] == "/problems/quick-task-name-taken"
    listed = (await client.get(tasks_path, headers=admin(fake_clerk))).json()
    assert sorted((task["name"], task["enabled"]) for task in listed) == [
        ("Other", True),
        ("Weekly summary", True),
    ]


async def test_members_cannot_change_quick_tasks(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, tasks_path: str
) -> None:
    task = (await client.post(tasks_path, json=TASK, headers=admin(fake_clerk))).json()
    attempts = [
        await client.post(tasks_path, json={**TASK, "name": "x"}, headers=member(fake_clerk)),
        await client.patch(
            f"{tasks_path}/{task['id']}", json={"name": "y"}, headers=member(fake_clerk)
        ),
        await client.delete(f"{tasks_path}/{task['id']}", headers=member(fake_clerk)),
    ]
    assert [response.status_code for response in attempts] == [403, 403, 403]


async def test_admin_deletes_a_quick_task(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, tasks_path: str
) -> None:
    task = (await client.post(tasks_path, json=TASK, headers=admin(fake_clerk))).json()
    assert (
        await client.delete(f"{tasks_path}/{task['id']}", headers=admin(fake_clerk))
    ).status_code == 204
    assert (await client.get(tasks_path, headers=admin(fake_clerk))).json() == []
    missing = await client.delete(f"{tasks_path}/{task['id']}", headers=admin(fake_clerk))
    assert missing.status_code == 404


async def test_another_organizations_quick_tasks_are_404(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, tasks_path: str
) -> None:
    task = (await client.post(tasks_path, json=TASK, headers=admin(fake_clerk))).json()
    outsider = admin(fake_clerk, "org_B")
    assert (await client.get(tasks_path, headers=outsider)).status_code == 404
    for method, body in (("PATCH", {"name": "x"}), ("DELETE", None)):
        response = await client.request(
            method, f"{tasks_path}/{task['id']}", json=body, headers=outsider
        )
        assert response.status_code == 404
    assert [
        t["name"] for t in (await client.get(tasks_path, headers=admin(fake_clerk))).json()
    ] == ["Weekly summary"]
