"""The service on a loopback port, on an event loop of its own in a thread, for clients that
block (schemathesis calls with `requests`): the tests' own loop stays free, and the service
serves from its thread as it would from a process of its own.

It has a database of its own (its requests commit) and a fake model server beside it, and
an organization with one of everything, so that fuzzed operations reach their logic instead
of answering 404 to everything.
"""

import asyncio
import tempfile
import threading
import uuid
from collections.abc import AsyncGenerator, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, start_service

T = TypeVar("T")
ORG = "org_contract"
ADMIN = "user_contract_admin"
MEMBER = "user_contract_member"


@dataclass
class Objects:
    """One of everything, in the organization the tokens act for."""

    agent_id: str
    conversation_id: str
    file_id: str
    source_id: str
    task_id: str
    model_id: str
    budget_id: str
    template_id: str

    def ids(self) -> dict[str, str]:
        """By the name of the path parameter that takes each."""
        return {
            "agent_id": self.agent_id,
            "conversation_id": self.conversation_id,
            "file_id": self.file_id,
            "source_id": self.source_id,
            "task_id": self.task_id,
            "model_id": self.model_id,
            "budget_id": self.budget_id,
            "template_id": self.template_id,
            "version": "1",  # a prompt template's first version
            "label": "production",
            "thread_id": self.conversation_id,  # CopilotKit's name for a conversation
        }


class LiveService:
    def __init__(self, service: Service, loop: asyncio.AbstractEventLoop) -> None:
        self.service = service
        self.base_url = service.base_url
        self._loop = loop

    def token(self, role: str, org: str = ORG) -> str:
        user = ADMIN if role == "admin" else MEMBER
        return self.service.clerk.token(f"{user}_{org}", org, role)

    def headers(self, role: str = "admin", org: str = ORG) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, org)}"}

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=120)


async def _running(
    test_database: DatabaseUnderTest, name: str, settings: dict[str, Any]
) -> AsyncGenerator[Service, None]:
    port = fake_openai.free_port()
    model, model_task = await fake_openai.serve(fake_openai.app, port)
    try:
        async for service in start_service(
            test_database,
            name,
            openai_base_url=f"http://127.0.0.1:{port}/v1",
            openai_api_key="test-key",
            llm_model="fake-model",
            llm_max_retries=0,
            **settings,
        ):
            yield service
    finally:
        model.should_exit = True
        await model_task


@contextmanager
def live_service(
    test_database: DatabaseUnderTest, name: str, **settings: Any
) -> Iterator[LiveService]:
    workspaces = tempfile.TemporaryDirectory(prefix=f"ajc-{name}-")
    settings.setdefault("workspaces_dir", Path(workspaces.name))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"live-{name}", daemon=True)
    thread.start()
    running = _running(test_database, name, settings)
    try:
        starting = asyncio.run_coroutine_threadsafe(running.__anext__(), loop)
        service = starting.result(timeout=120)
        yield LiveService(service, loop)
    finally:
        asyncio.run_coroutine_threadsafe(running.aclose(), loop).result(timeout=60)
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        workspaces.cleanup()


async def _cancel_the_rest() -> None:
    """What the service left on its loop (a stream's task, a pool's closing): cancelled
    and awaited, so the loop closes with nothing pending."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def make_objects(live: LiveService, org: str = ORG, marker: str = "contract") -> Objects:
    """One of everything, made through the API as a user would; `marker` is in every name
    and text, so a test can look for it where it must not be."""
    admin = live.headers("admin", org)
    with httpx.Client(base_url=live.base_url, timeout=60) as http:
        # The member's first request provisions their membership.
        assert http.get("/me", headers=live.headers("member", org)).status_code == 200

        def made(response: httpx.Response) -> str:
            assert response.status_code in (200, 201), response.text
            return str(response.json()["id"])

        agent_id = made(
            http.post(
                "/agents",
                json={
                    "slug": f"agent-{uuid.uuid4().hex[:8]}",
                    "name": f"Agent {marker}",
                    "capabilities": ["search_knowledge", "read_file", "update_state"],
                },
                headers=admin,
            )
        )
        conversation_id = made(
            http.post(
                "/conversations",
                json={"agent_id": agent_id, "title": marker, "visibility": "organization"},
                headers=admin,
            )
        )
        file_id = made(
            http.post(
                f"/conversations/{conversation_id}/files",
                files={"file": (f"{marker}.txt", f"Holidays: {marker}".encode(), "text/plain")},
                headers=admin,
            )
        )
        source_id = made(
            http.post(
                f"/agents/{agent_id}/knowledge-sources",
                json={"kind": "text", "name": marker, "text": f"Holidays: {marker}."},
                headers=admin,
            )
        )
        task_id = made(
            http.post(
                f"/agents/{agent_id}/quick-tasks",
                json={"name": marker, "prompt": "Summarise {topic}."},
                headers=admin,
            )
        )
        model_id = made(
            http.post(
                "/models",
                json={
                    "name": f"Model {marker} {uuid.uuid4().hex[:8]}",
                    "provider": "openai-compatible",
                    "provider_model": "fake-model",
                    "endpoint": "https://llm.example.com/v1",
                    "api_key": f"sk-{marker}-key",
                    "price": {"input_micro_usd": 1, "output_micro_usd": 2},
                },
                headers=admin,
            )
        )
        # One per metric and organization: made once, found after.
        budgets = http.get("/budgets", headers=admin).json()
        budget_id = next(
            (budget["id"] for budget in budgets if budget["metric"] == "tokens"), None
        ) or made(http.post("/budgets", json={"metric": "tokens", "limit": 10**9}, headers=admin))
        templates = http.get("/prompt-templates", headers=admin).json()
        template_id = next(
            (template["id"] for template in templates if template["name"] == marker), None
        ) or made(
            http.post(
                "/prompt-templates",
                json={
                    "name": marker,
                    "kind": "system",
                    "text": f"You answer about {marker} and {{{{topic}}}}.",
                    "variables": {"type": "object", "properties": {"topic": {"type": "string"}}},
                },
                headers=admin,
            )
        )
        labelled = http.put(
            f"/prompt-templates/{template_id}/labels/production", json={"version": 1}, headers=admin
        )
        assert labelled.status_code == 200, labelled.text
    return Objects(
        agent_id, conversation_id, file_id, source_id, task_id, model_id, budget_id, template_id
    )
