"""Agents name a chat model of the registry, and their runs call it with its own key; what
an agent may name is checked when it is saved."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, new_agent, run_input, start_service
from tests.runs.test_runs import run, wait_for_status

pytestmark = pytest.mark.asyncio(loop_scope="session")

ORG_KEY = "sk-organization-own-key-4242"


@pytest.fixture(scope="module")
async def service(test_database: DatabaseUnderTest, model_url: str) -> AsyncIterator[Service]:
    """The environment's model registered, and organizations' endpoints on loopback allowed
    (the fake provider listens there)."""
    async for running in start_service(
        test_database,
        "agent_models",
        openai_base_url=model_url,
        openai_api_key="sk-platform-environment-key",
        llm_model="fake-model",
        llm_max_retries=0,
        egress_allow_private_addresses=True,
    ):
        yield running


async def own_model(
    http: httpx.AsyncClient, service: Service, model_url: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "name": f"ours-{uuid.uuid4().hex[:8]}",
        "provider": "openai-compatible",
        "provider_model": "our-fine-tune",
        "endpoint": model_url,
        "api_key": ORG_KEY,
        "capabilities": ["chat"],
        **fields,
    }
    created = await http.post(f"{service.base_url}/models", json=body, headers=service.headers())
    assert created.status_code == 201, created.text
    return dict(created.json())


async def test_a_run_calls_the_agents_own_model_with_its_organizations_key(
    http: httpx.AsyncClient, service: Service, model_url: str
) -> None:
    model = await own_model(http, service, model_url)
    agent_id = await new_agent(http, service, chat_model_id=model["id"])
    events = await run(http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "Hi")))
    assert events[-1]["type"] == "RUN_FINISHED"
    assert fake_openai.keys_seen[-1] == ORG_KEY
    assert fake_openai.requests_seen[-1]["model"] == "our-fine-tune"
    message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    await wait_for_status(service, message_id, "complete")
    assert service.rows("SELECT model FROM messages WHERE external_id = %s", message_id) == [
        ("our-fine-tune",)
    ]

    # A new key: the next run uses it (the client is made again for the model's new version).
    changed = await http.patch(
        f"{service.base_url}/models/{model['id']}",
        json={"api_key": "sk-organization-new-key-4343"},
        headers=service.headers(),
    )
    assert changed.status_code == 200
    await run(http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "Hi")))
    assert fake_openai.keys_seen[-1] == "sk-organization-new-key-4343"


async def test_an_agent_without_a_model_uses_the_environments(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    await run(http, service, agent_id, run_input(fake_openai.new_id(), ("m1", "Hi")))
    assert fake_openai.keys_seen[-1] == "sk-platform-environment-key"
    assert fake_openai.requests_seen[-1]["model"] == "fake-model"


async def test_an_inactive_model_stops_its_agents_runs_with_a_clear_problem(
    http: httpx.AsyncClient, service: Service, model_url: str
) -> None:
    model = await own_model(http, service, model_url)
    agent_id = await new_agent(http, service, chat_model_id=model["id"])
    await http.patch(
        f"{service.base_url}/models/{model['id']}",
        json={"active": False},
        headers=service.headers(),
    )
    refused = await http.post(
        f"{service.base_url}/agents/{agent_id}/runs",
        json=run_input(fake_openai.new_id(), ("m1", "Hi")),
        headers=service.headers(),
    )
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("model-unavailable")
    assert "inactive" in refused.json()["detail"]


async def test_what_an_agent_may_name_is_checked_when_it_is_saved(
    http: httpx.AsyncClient, service: Service, model_url: str
) -> None:
    other_org = service.clerk.headers("user_other", "org_other", "admin")
    theirs = await http.post(
        f"{service.base_url}/models",
        json={"name": "theirs", "provider": "openai", "provider_model": "gpt-x"},
        headers=other_org,
    )
    inactive = await own_model(http, service, model_url, active=False)
    embeddings = await own_model(
        http, service, model_url, capabilities=["embeddings"], embedding_dimensions=768
    )
    ours = await own_model(http, service, model_url)

    async def create(**fields: Any) -> httpx.Response:
        body = {"slug": f"a-{uuid.uuid4().hex[:8]}", "name": "Named", **fields}
        return await http.post(f"{service.base_url}/agents", json=body, headers=service.headers())

    assert (await create(chat_model_id=theirs.json()["id"])).status_code == 404
    assert (await create(chat_model_id=str(uuid.uuid4()))).status_code == 404
    assert (await create(chat_model_id=inactive["id"])).status_code == 422
    not_chat = await create(chat_model_id=embeddings["id"])
    assert not_chat.status_code == 422 and "not a chat model" in not_chat.json()["detail"]
    public = await create(chat_model_id=ours["id"], visibility="public")
    assert public.status_code == 422 and "platform's models" in public.json()["detail"]

    private = await create(chat_model_id=ours["id"])
    assert private.status_code == 201 and private.json()["chat_model_id"] == ours["id"]
    made_public = await http.patch(
        f"{service.base_url}/agents/{private.json()['id']}",
        json={"visibility": "public"},
        headers=service.headers(),
    )
    assert made_public.status_code == 422

    in_use = await http.delete(f"{service.base_url}/models/{ours['id']}", headers=service.headers())
    assert in_use.status_code == 409 and in_use.json()["type"].endswith("model-in-use")
    back_to_default = await http.patch(
        f"{service.base_url}/agents/{private.json()['id']}",
        json={"chat_model_id": None},
        headers=service.headers(),
    )
    assert back_to_default.status_code == 200 and back_to_default.json()["chat_model_id"] is None
    deleted = await http.delete(
        f"{service.base_url}/models/{ours['id']}", headers=service.headers()
    )
    assert deleted.status_code == 204
