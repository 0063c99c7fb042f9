"""Ingestion end to end through the job worker: sources of every format become chunks with
citations, retrieval finds the right document for questions written from the samples, and
the failure paths (corrupt PDF, unreadable type, embedding provider down) say why. On both
storage backends: the worker reads the files from the local disk, then from S3."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from app.files.backends import create_storage
from tests import fake_openai
from tests.conftest import DatabaseUnderTest, StorageUnderTest
from tests.runs.conftest import Service, start_service

pytestmark = pytest.mark.asyncio(loop_scope="session")

SAMPLES = Path(__file__).parent / "samples"
DOCUMENTS = [
    "handbook.md",
    "benefits.html",
    "expenses.csv",
    "offices.json",
    "security.pdf",
    "remote-work.docx",
    "notes.txt",
]
# Questions written from the samples, each answered by exactly one of them.
QUESTIONS = [
    ("How many days of paid holiday does an employee get per year?", "handbook.md"),
    ("How long is parental leave?", "handbook.md"),
    ("What share of the health insurance premium does Northwind pay?", "benefits.html"),
    ("How much does the employer contribute to the pension plan?", "benefits.html"),
    ("What is the expense limit for a hotel night?", "expenses.csv"),
    ("How much may a meal cost?", "expenses.csv"),
    ("What is the address of the Lisbon office?", "offices.json"),
    ("What is the guest wifi network called?", "offices.json"),
    ("Where do I report a security incident?", "security.pdf"),
    ("How long must passwords be?", "security.pdf"),
    ("How many days per week may I work remotely?", "remote-work.docx"),
    ("How much is the monthly internet allowance?", "remote-work.docx"),
    ("When is the all-hands meeting?", "notes.txt"),
    ("How long are lost and found items kept at reception?", "notes.txt"),
]


@pytest.fixture(scope="module")
async def service(
    test_database: DatabaseUnderTest,
    storage_under_test: StorageUnderTest,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Service]:
    async for running in start_service(
        test_database,
        "knowledge",
        run_worker_in_process=True,
        **storage_under_test.settings(tmp_path_factory.mktemp("workspaces")),
        egress_allow_private_addresses=True,
        # A provider that is down: nothing listens on port 9 (discard).
        embeddings_base_url="http://127.0.0.1:9/v1",
        embeddings_api_key="test",
        llm_max_retries=0,
        llm_timeout_seconds=2,
    ):
        yield running


@pytest.fixture(scope="module")
async def web_page() -> AsyncIterator[str]:
    """A web page for URL sources, served on a loopback port."""

    async def page(_: Any) -> Response:
        return Response((SAMPLES / "benefits.html").read_bytes(), media_type="text/html")

    port = fake_openai.free_port()
    server, task = await fake_openai.serve(Starlette(routes=[Route("/benefits", page)]), port)
    yield f"http://127.0.0.1:{port}/benefits"
    server.should_exit = True
    await task


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def new_agent(
    http: httpx.AsyncClient, service: Service, model: str = "all-MiniLM-L6-v2"
) -> str:
    response = await http.post(
        f"{service.base_url}/agents",
        json={"slug": f"k-{uuid.uuid4().hex[:8]}", "name": "Knows", "embedding_model": model},
        headers=service.headers(),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def add_file(http: httpx.AsyncClient, service: Service, agent_id: str, name: str) -> str:
    response = await http.post(
        f"{service.base_url}/agents/{agent_id}/knowledge-sources/files",
        files={"file": (name, (SAMPLES / name).read_bytes(), "application/octet-stream")},
        headers=service.headers(),
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    return str(response.json()["id"])


async def settled(
    http: httpx.AsyncClient, service: Service, agent_id: str, count: int
) -> dict[str, dict[str, Any]]:
    """The agent's sources by name, once all `count` are ready or failed."""
    for _ in range(600):
        response = await http.get(
            f"{service.base_url}/agents/{agent_id}/knowledge-sources", headers=service.headers()
        )
        sources = {source["name"]: source for source in response.json()}
        if len(sources) == count and all(
            source["status"] in ("ready", "failed") for source in sources.values()
        ):
            return sources
        await asyncio.sleep(0.1)
    raise AssertionError(f"sources never settled: {sources}")


async def search(
    http: httpx.AsyncClient, service: Service, agent_id: str, query: str, **fields: Any
) -> list[dict[str, Any]]:
    response = await http.post(
        f"{service.base_url}/agents/{agent_id}/search",
        json={"query": query, **fields},
        headers=service.headers(),
    )
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()["hits"]
    return hits


async def test_every_format_is_ingested_and_the_right_document_is_retrieved(
    http: httpx.AsyncClient, service: Service, web_page: str
) -> None:
    agent_id = await new_agent(http, service)
    for name in [*DOCUMENTS, "corrupt.pdf"]:
        await add_file(http, service, agent_id, name)
    text = await http.post(
        f"{service.base_url}/agents/{agent_id}/knowledge-sources",
        json={"kind": "text", "name": "canteen", "text": "The canteen serves soup at noon."},
        headers=service.headers(),
    )
    url = await http.post(
        f"{service.base_url}/agents/{agent_id}/knowledge-sources",
        json={"kind": "url", "name": "benefits page", "url": web_page},
        headers=service.headers(),
    )
    assert (text.status_code, url.status_code) == (201, 201)

    sources = await settled(http, service, agent_id, len(DOCUMENTS) + 3)

    failed = sources.pop("corrupt.pdf")
    assert failed["status"] == "failed"
    assert "PDF" in failed["error"]
    assert {name: s["status"] for name, s in sources.items()} == dict.fromkeys(sources, "ready")
    assert all(source["chunk_count"] > 0 for source in sources.values())
    hits_at_3 = 0
    for question, document in QUESTIONS:
        hits = await search(http, service, agent_id, question, top_k=3)
        if document in [hit["citation"]["source_name"] for hit in hits]:
            hits_at_3 += 1
    hit_rate = hits_at_3 / len(QUESTIONS)
    print(f"retrieval hit rate at 3: {hit_rate:.2f} over {len(QUESTIONS)} questions")
    assert hit_rate >= 0.8
    [first, *_] = await search(http, service, agent_id, "How long must passwords be?")
    assert first["citation"]["source_name"] == "security.pdf"
    assert first["citation"]["page"] == 2
    [soup, *_] = await search(http, service, agent_id, "When is soup served?")
    assert soup["citation"]["source_name"] == "canteen"
    assert soup["content"] == "The canteen serves soup at noon."


async def test_reingesting_replaces_the_chunks_at_once(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    source_id = await add_file(http, service, agent_id, "handbook.md")
    await settled(http, service, agent_id, 1)
    before = service.rows(
        "SELECT id FROM embeddings WHERE knowledge_source_id = %s ORDER BY chunk_index", source_id
    )

    again = await http.post(
        f"{service.base_url}/agents/{agent_id}/knowledge-sources/{source_id}/ingest",
        headers=service.headers(),
    )
    assert again.status_code == 202
    for _ in range(300):
        after = service.rows(
            "SELECT id FROM embeddings WHERE knowledge_source_id = %s ORDER BY chunk_index",
            source_id,
        )
        if after != before:
            break
        await asyncio.sleep(0.1)
    assert len(after) == len(before)
    assert not set(after) & set(before)


async def test_deleting_an_agent_removes_its_knowledge_files(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    source_id = await add_file(http, service, agent_id, "notes.txt")
    await settled(http, service, agent_id, 1)
    [(path,)] = service.rows(
        "SELECT storage_path FROM agent_knowledge_sources WHERE id = %s", source_id
    )
    storage = create_storage(service.settings)
    folder = path.rsplit("/", 1)[0]
    assert await storage.keys(folder) == [path]

    deleted = await http.delete(f"{service.base_url}/agents/{agent_id}", headers=service.headers())

    assert deleted.status_code == 204
    assert service.rows("SELECT id FROM agent_knowledge_sources WHERE id = %s", source_id) == []
    assert await storage.keys(folder) == []


async def test_an_embedding_provider_that_is_down_fails_the_source_with_its_reason(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service, model="text-embedding-3-small")
    await add_file(http, service, agent_id, "notes.txt")
    [source] = (await settled(http, service, agent_id, 1)).values()
    assert source["status"] == "failed"
    assert "embedding provider" in source["error"]
    assert service.rows("SELECT count(*) FROM embeddings WHERE agent_id = %s", agent_id) == [(0,)]


async def test_a_file_type_with_no_text_is_refused_as_knowledge(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    response = await http.post(
        f"{service.base_url}/agents/{agent_id}/knowledge-sources/files",
        files={"file": ("chart.png", png, "image/png")},
        headers=service.headers(),
    )
    assert response.status_code == 415


async def test_conversation_files_are_searchable_in_their_conversation_only(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service)
    conversations = [
        (
            await http.post(
                f"{service.base_url}/conversations",
                json={"agent_id": agent_id},
                headers=service.headers(),
            )
        ).json()["id"]
        for _ in range(2)
    ]
    uploaded = await http.post(
        f"{service.base_url}/conversations/{conversations[0]}/files",
        files={"file": ("notes.txt", (SAMPLES / "notes.txt").read_bytes(), "text/plain")},
        headers=service.headers(),
    )
    file_id = uploaded.json()["id"]
    question = "When is the all-hands meeting?"
    for _ in range(300):
        hits = await search(http, service, agent_id, question, conversation_id=conversations[0])
        if hits:
            break
        await asyncio.sleep(0.1)
    assert hits[0]["citation"]["file_id"] == file_id
    assert hits[0]["citation"]["source_kind"] == "file"
    assert await search(http, service, agent_id, question) == []
    assert await search(http, service, agent_id, question, conversation_id=conversations[1]) == []


async def test_ingestion_and_search_embeddings_are_usage_events(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service, model="feature-hashing-384")
    await add_file(http, service, agent_id, "notes.txt")
    await settled(http, service, agent_id, 1)
    await search(http, service, agent_id, "When is the all-hands meeting?")

    response = await http.get(
        f"{service.base_url}/usage",
        params=[("group_by", "agent"), ("group_by", "purpose"), ("group_by", "model")],
        headers=service.headers(),
    )
    assert response.status_code == 200, response.text
    rows = {row["purpose"]: row for row in response.json()["rows"] if row["agent_id"] == agent_id}
    assert set(rows) == {"embedding_ingest", "embedding_search"}
    for row in rows.values():
        # Computed here: no provider's count, the estimate marked as such, no price.
        assert row["model_name"] == "feature-hashing-384" and row["input_tokens"] > 0
        assert row["estimated_calls"] == row["calls"] == row["unpriced_calls"]
    assert rows["embedding_search"]["calls"] == 1
    assert rows["embedding_search"]["output_tokens"] == 0
