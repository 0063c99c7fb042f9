"""An agent's instructions and a quick task's prompt from a prompt template: checked when
saved, rendered at each run as the label points then, and the version recorded in the run's
usage event."""

import uuid
from typing import Any

import httpx
import pytest

from tests import fake_openai
from tests.runs.conftest import Service, new_agent, run_input, run_scheduled_quick_tasks
from tests.runs.test_copilotkit_runtime import events_of
from tests.runs.test_runs import run

pytestmark = pytest.mark.asyncio(loop_scope="session")

VARIABLES = {
    "type": "object",
    "properties": {"tone": {"type": "string", "default": "kind"}, "topic": {"type": "string"}},
    "required": ["topic"],
}


async def new_template(http: httpx.AsyncClient, service: Service) -> dict[str, Any]:
    created = await http.post(
        f"{service.base_url}/prompt-templates",
        json={
            "name": f"Persona {uuid.uuid4().hex[:8]}",
            "kind": "system",
            "text": "You are {{tone}} about {{topic}}.",
            "variables": VARIABLES,
        },
        headers=service.headers(),
    )
    assert created.status_code == 201, created.text
    template = dict(created.json())
    labelled = await http.put(
        f"{service.base_url}/prompt-templates/{template['id']}/labels/production",
        json={"version": 1},
        headers=service.headers(),
    )
    assert labelled.status_code == 200, labelled.text
    return template


def reference(template: dict[str, Any], **variables: Any) -> dict[str, Any]:
    return {"name": template["name"], "label": "production", "variables": variables}


async def test_a_run_is_instructed_by_the_version_its_label_points_at(
    http: httpx.AsyncClient, service: Service
) -> None:
    template = await new_template(http, service)
    agent_id = await new_agent(
        http, service, instructions_template=reference(template, topic="tea")
    )
    read = await http.get(f"{service.base_url}/agents/{agent_id}", headers=service.headers())
    assert read.json()["instructions_template"] == {
        "template_id": template["id"],
        **reference(template, topic="tea"),
    }

    run_id = fake_openai.new_id()
    events = await run(
        http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "Hi"), run_id=run_id)
    )
    assert events[-1]["type"] == "RUN_FINISHED"
    assert fake_openai.requests_seen[-1]["messages"][0] == {
        "role": "system",
        "content": "You are kind about tea.",
    }
    [(version_1,)] = service.rows(
        "SELECT id FROM prompt_template_versions WHERE template_id = %s AND version = 1",
        template["id"],
    )
    assert service.rows(
        "SELECT instructions_template_version_id, task_template_version_id"
        " FROM usage_events WHERE run_id = %s",
        run_id,
    ) == [(version_1, None)]

    # A new version, and the label moved: the next run has it.
    base = f"{service.base_url}/prompt-templates/{template['id']}"
    saved = await http.post(
        f"{base}/versions",
        json={"text": "Be {{tone}}; the topic is {{topic}}.", "variables": VARIABLES},
        headers=service.headers(),
    )
    assert saved.status_code == 201
    await http.put(f"{base}/labels/production", json={"version": 2}, headers=service.headers())
    await run(http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "Hi")))
    assert fake_openai.requests_seen[-1]["messages"][0]["content"] == "Be kind; the topic is tea."


async def test_what_an_agents_template_reference_must_be(
    http: httpx.AsyncClient, service: Service
) -> None:
    template = await new_template(http, service)
    agents = f"{service.base_url}/agents"

    async def create(**fields: Any) -> httpx.Response:
        body = {"slug": f"a-{uuid.uuid4().hex[:8]}", "name": "Templated", **fields}
        return await http.post(agents, json=body, headers=service.headers())

    missing = await create(instructions_template=reference(template))
    assert missing.status_code == 422
    assert missing.json()["type"] == "/problems/missing-variables"
    unknown = await create(instructions_template={"name": "No such template"})
    assert unknown.status_code == 404
    no_label = await create(
        instructions_template={**reference(template, topic="x"), "label": "staging"}
    )
    assert no_label.status_code == 404
    public = await create(instructions_template=reference(template, topic="x"), visibility="public")
    assert public.status_code == 422
    assert public.json()["type"] == "/problems/invalid-template-reference"

    agent_id = await new_agent(http, service, instructions_template=reference(template, topic="x"))
    made_public = await http.patch(
        f"{agents}/{agent_id}", json={"visibility": "public"}, headers=service.headers()
    )
    assert made_public.status_code == 422
    # A template an agent uses stays; once the agent lets go of it, it may go.
    in_use = await http.delete(
        f"{service.base_url}/prompt-templates/{template['id']}", headers=service.headers()
    )
    assert in_use.status_code == 409
    assert in_use.json()["type"] == "/problems/prompt-template-in-use"
    released = await http.patch(
        f"{agents}/{agent_id}", json={"instructions_template": None}, headers=service.headers()
    )
    assert released.status_code == 200, released.text
    assert released.json()["instructions_template"] is None
    deleted = await http.delete(
        f"{service.base_url}/prompt-templates/{template['id']}", headers=service.headers()
    )
    assert deleted.status_code == 204


async def test_a_quick_task_says_its_template_rendered_with_the_runs_parameters(
    http: httpx.AsyncClient, service: Service
) -> None:
    created = await http.post(
        f"{service.base_url}/prompt-templates",
        json={
            "name": f"Summary {uuid.uuid4().hex[:8]}",
            "kind": "quick_task",
            "text": "Summarise {{topic}} for {{reader}}.",
            "variables": {
                "type": "object",
                "properties": {"topic": {"type": "string"}, "reader": {"type": "string"}},
                "required": ["topic", "reader"],
            },
        },
        headers=service.headers(),
    )
    assert created.status_code == 201, created.text
    template = created.json()
    agent_id = await new_agent(http, service)
    tasks = f"{service.base_url}/agents/{agent_id}/quick-tasks"
    both = await http.post(
        tasks,
        json={"name": "Both", "prompt": "Hi", "prompt_template": {"name": template["name"]}},
        headers=service.headers(),
    )
    assert both.status_code == 422
    task = await http.post(
        tasks,
        json={
            "name": "Summary",
            "prompt_template": {"name": template["name"], "variables": {"reader": "a child"}},
        },
        headers=service.headers(),
    )
    assert task.status_code == 201, task.text
    assert task.json()["prompt_template"]["template_id"] == template["id"]
    runs = f"{tasks}/{task.json()['id']}/runs"

    async with http.stream(
        "POST", runs, json={"parameters": {"topic": "tea"}}, headers=service.headers()
    ) as response:
        assert response.status_code == 200
        events = events_of((await response.aread()).decode())
    last_user = [m for m in fake_openai.requests_seen[-1]["messages"] if m["role"] == "user"][-1]
    assert last_user["content"] == "Summarise tea for a child."
    # The run's usage event names the version its prompt came from.
    [(version_1,)] = service.rows(
        "SELECT id FROM prompt_template_versions WHERE template_id = %s AND version = 1",
        template["id"],
    )
    assert service.rows(
        "SELECT instructions_template_version_id, task_template_version_id"
        " FROM usage_events WHERE run_id = %s",
        events[0]["runId"],
    ) == [(None, version_1)]

    # Scheduled, with every variable fixed: the scheduler's run records the version too.
    scheduled = await http.post(
        tasks,
        json={
            "name": "Tea brief",
            "schedule": "0 7 * * *",
            "prompt_template": {
                "name": template["name"],
                "variables": {"topic": "green tea", "reader": "a chemist"},
            },
        },
        headers=service.headers(),
    )
    assert scheduled.status_code == 201, scheduled.text
    service.rows(
        "UPDATE agent_quick_tasks SET next_run_at = now() - interval '1 minute' "
        "WHERE id = %s RETURNING id",
        scheduled.json()["id"],
    )
    await run_scheduled_quick_tasks(service)
    assert service.rows(
        "SELECT u.task_template_version_id FROM usage_events AS u"
        " JOIN conversations AS c ON c.id = u.conversation_id"
        " WHERE c.agent_id = %s AND c.title = 'Tea brief'",
        agent_id,
    ) == [(version_1,)]

    missing = await http.post(runs, json={"parameters": {}}, headers=service.headers())
    assert missing.status_code == 422
    assert missing.json()["type"] == "/problems/missing-variables"
    in_use = await http.delete(
        f"{service.base_url}/prompt-templates/{template['id']}", headers=service.headers()
    )
    assert in_use.status_code == 409
