"""Scheduled quick tasks, run by the job worker on the service's database: a due task runs
once for the admin who scheduled it, in a conversation named after it, and moves to its
next tick."""

from datetime import UTC, datetime

import httpx
import pytest

from tests.runs.conftest import Service, new_agent, run_scheduled_quick_tasks

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_due_scheduled_quick_task_runs_once_in_the_worker(
    http: httpx.AsyncClient, service: Service, model_url: str
) -> None:
    agent_id = await new_agent(http, service)
    created = await http.post(
        f"{service.base_url}/agents/{agent_id}/quick-tasks",
        json={"name": "Morning brief", "prompt": "Brief me.", "schedule": "0 7 * * *"},
        headers=service.headers(),
    )
    task_id = created.json()["id"]
    service.rows(
        "UPDATE agent_quick_tasks SET next_run_at = now() - interval '1 minute' "
        "WHERE id = %s RETURNING id",
        task_id,
    )

    await run_scheduled_quick_tasks(service, passes=2)  # the second finds nothing due

    conversations = service.rows(
        "SELECT c.id, c.title, u.clerk_id FROM conversations c JOIN users u ON u.id = c.user_id "
        "WHERE c.agent_id = %s",
        agent_id,
    )
    assert [(title, user) for _, title, user in conversations] == [("Morning brief", "user_runner")]
    messages = service.rows(
        "SELECT role, content, status FROM messages WHERE conversation_id = %s ORDER BY created_at",
        conversations[0][0],
    )
    assert messages == [
        ("user", "Brief me.", "complete"),
        ("assistant", "Hello from the fake model.", "complete"),
    ]
    next_run, last_run = service.rows(
        "SELECT next_run_at, last_run_at FROM agent_quick_tasks WHERE id = %s", task_id
    )[0]
    assert next_run > datetime.now(UTC) and last_run is not None
