"""Scheduled quick tasks, run by the job worker on the service's database: a due task runs
once for the admin who scheduled it, in a conversation named after it, and moves to its
next tick."""

from datetime import UTC, datetime

import httpx
import pytest

from app.core.db import Database, create_driver_pool, create_engine, create_sessionmaker
from app.core.settings import Settings
from app.files.backends import create_storage
from app.jobs.queue import create_job_queue
from app.jobs.worker import job_context
from app.knowledge.embedders import Embedders
from app.llm.clients import ModelClients
from app.secrets.keyring import Keyring
from app.secrets.service import Vault
from tests.runs.conftest import Service, new_agent

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

    settings = Settings.model_validate(
        {"database_url": service.app_url, "llm_model": "fake-model", "run_max_seconds": 30}
    )
    engine = create_engine(service.app_url, settings)
    sessionmaker = create_sessionmaker(engine)
    driver_pool = await create_driver_pool(service.app_url, settings)
    # The worker's model clients: the model comes from the registry, the service's settings'
    # (the environment's model, registered by the service fixture).
    model_clients = ModelClients(service.settings, Vault(Keyring.from_settings(service.settings)))
    context = job_context(
        sessionmaker,
        Database(sessionmaker, driver_pool, settings.database_pool_timeout_seconds),
        settings,
        model_clients,
        Embedders(settings),
        create_storage(settings),
    )
    queue = create_job_queue(service.app_url)
    try:
        async with queue.open_async():
            for _ in range(2):  # the second pass finds nothing due
                await queue.configure_task("runs:schedule_quick_tasks").defer_async(timestamp=0)
                await queue.run_worker_async(
                    wait=False, install_signal_handlers=False, additional_context=context
                )
    finally:
        await model_clients.close()
        await driver_pool.close()
        await engine.dispose()

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
