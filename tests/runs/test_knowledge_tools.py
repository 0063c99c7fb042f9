"""Runs that use knowledge: the search and read-file tools through a model, and the no-LLM
mode answering with retrieved passages; both cite their sources in the answer's parts and in
a `citations` custom event."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, run_input, start_service
from tests.runs.test_runs import run, types

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOTES = Path(__file__).parents[1] / "knowledge" / "samples" / "notes.txt"
LEAVE = "Parental leave is sixteen weeks at full pay."


async def knowing_service(
    test_database: DatabaseUnderTest, tmp: Path, name: str, **settings: Any
) -> AsyncIterator[Service]:
    async for running in start_service(
        test_database, name, run_worker_in_process=True, workspaces_dir=tmp, **settings
    ):
        yield running


@pytest.fixture(scope="module")
async def service(
    test_database: DatabaseUnderTest, model_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    async for running in knowing_service(
        test_database,
        tmp_path_factory.mktemp("workspaces"),
        "knowledge_tools",
        openai_base_url=model_url,
        openai_api_key="test-key",
        llm_model="fake-model",
        llm_max_retries=0,
    ):
        yield running


async def agent_knowing(
    http: httpx.AsyncClient, service: Service, capabilities: list[str], texts: dict[str, str]
) -> str:
    agent = await http.post(
        f"{service.base_url}/agents",
        json={"slug": f"k-{uuid.uuid4().hex[:8]}", "name": "Knows", "capabilities": capabilities},
        headers=service.headers(),
    )
    agent_id = str(agent.json()["id"])
    for name, text in texts.items():
        added = await http.post(
            f"{service.base_url}/agents/{agent_id}/knowledge-sources",
            json={"kind": "text", "name": name, "text": text},
            headers=service.headers(),
        )
        assert added.status_code == 201, added.text
    for _ in range(600):
        sources = (
            await http.get(
                f"{service.base_url}/agents/{agent_id}/knowledge-sources",
                headers=service.headers(),
            )
        ).json()
        if all(source["status"] == "ready" for source in sources):
            return agent_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"never ingested: {sources}")


def stored_parts(service: Service, message_id: str) -> list[dict[str, Any]]:
    [(parts,)] = service.rows("SELECT parts FROM messages WHERE external_id = %s", message_id)
    return list(parts)


async def test_the_search_tool_answers_from_knowledge_and_the_answer_cites_it(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await agent_knowing(
        http,
        service,
        ["search_knowledge"],
        {"Leave policy": LEAVE, "Canteen": "The canteen serves soup at noon."},
    )
    ask = 'use search_knowledge: {"query": "parental leave"}'

    events = await run(http, service, agent_id, run_input(fake_openai.new_id(), ("m1", ask)))

    assert types(events)[-1] == "RUN_FINISHED"
    result = next(e for e in events if e["type"] == "TOOL_CALL_RESULT")
    assert result["content"].startswith(f"[1] (Leave policy) {LEAVE}")
    [cited] = [e for e in events if e["type"] == "CUSTOM"]
    assert cited["name"] == "citations"
    assert cited["value"][0]["source_name"] == "Leave policy"
    answer_id = [e for e in events if e["type"] == "TEXT_MESSAGE_START"][-1]["messageId"]
    parts = stored_parts(service, answer_id)
    assert parts[0]["text"].startswith("The tool said: [1] (Leave policy)")
    citations = [part for part in parts if part["type"] == "citation"]
    assert citations[0]["source_name"] == "Leave policy"
    assert citations[0]["source_kind"] == "knowledge_source"
    thread = next(e for e in events if e["type"] == "RUN_STARTED")["threadId"]
    page = await http.get(
        f"{service.base_url}/conversations/{thread}/messages", headers=service.headers()
    )
    [answer] = [item for item in page.json()["items"] if item["id"] == answer_id]
    assert answer["metadata"]["citations"] == citations


async def test_the_read_file_tool_reads_a_file_of_the_conversation_only(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await agent_knowing(http, service, ["read_file"], {})
    threads = []
    for _ in range(2):
        created = await http.post(
            f"{service.base_url}/conversations",
            json={"agent_id": agent_id},
            headers=service.headers(),
        )
        threads.append(created.json()["id"])
    uploaded = await http.post(
        f"{service.base_url}/conversations/{threads[0]}/files",
        files={"file": ("notes.txt", NOTES.read_bytes(), "text/plain")},
        headers=service.headers(),
    )
    ask = "use read_file: " + json.dumps({"file_id": uploaded.json()["id"]})

    here = await run(http, service, agent_id, run_input(threads[0], ("m1", ask)))
    elsewhere = await run(http, service, agent_id, run_input(threads[1], ("m2", ask)))

    [read] = [e["content"] for e in here if e["type"] == "TOOL_CALL_RESULT"]
    assert read.startswith("notes.txt (text/plain):")
    assert "all-hands meeting" in read
    [refused] = [e["content"] for e in elsewhere if e["type"] == "TOOL_CALL_RESULT"]
    assert json.loads(refused) == {"error": "This conversation has no file with that id."}


async def test_without_a_model_the_answer_is_the_retrieved_passages_cited(
    http: httpx.AsyncClient, test_database: DatabaseUnderTest, tmp_path: Path
) -> None:
    async for service in knowing_service(test_database, tmp_path, "nollm_knowledge"):
        agent_id = await agent_knowing(
            http,
            service,
            [],
            {"Leave policy": LEAVE, "Canteen": "The canteen serves soup at noon."},
        )
        question = "How long is parental leave?"
        events = await run(
            http, service, agent_id, run_input(fake_openai.new_id(), ("m1", question))
        )

        assert types(events)[-1] == "RUN_FINISHED"
        text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
        assert text.startswith("[no-LLM mode")
        assert f"[1] (Leave policy) {LEAVE}" in text
        [cited] = [e for e in events if e["type"] == "CUSTOM"]
        assert cited["value"][0]["source_name"] == "Leave policy"
        answer_id = next(e for e in events if e["type"] == "TEXT_MESSAGE_START")["messageId"]
        citations = [p for p in stored_parts(service, answer_id) if p["type"] == "citation"]
        assert citations[0]["source_name"] == "Leave policy"

        empty = await agent_knowing(http, service, [], {})
        events = await run(http, service, empty, run_input(fake_openai.new_id(), ("m2", "hi")))
        text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
        assert text.endswith(
            "I found nothing in this agent's knowledge that matches your question."
        )
