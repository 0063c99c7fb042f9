"""A worker killed (SIGKILL) in the middle of an ingestion: its job is left `doing`, and once
the worker's heartbeat is older than WORKER_STALLED_SECONDS a live worker runs it again; the
source ends `ready` with one set of chunks. The worker is a real `python -m app worker`
process; the ingestion is slow because its embeddings endpoint is (the fake model server)."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import fake_openai
from tests.conftest import DatabaseUnderTest
from tests.runs.conftest import Service, start_service

pytestmark = pytest.mark.asyncio(loop_scope="session")

STALLED_SECONDS = 2.0
ROOT = Path(__file__).resolve().parents[2]
# About 260 chunks: five batches of 64 for the embeddings endpoint, each one slow.
SENTENCES = 8_000
INGEST_TASK = "knowledge:ingest_source"


@pytest.fixture(scope="module")
async def embeddings_url() -> AsyncIterator[str]:
    port = fake_openai.free_port()
    server, task = await fake_openai.serve(fake_openai.app, port)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    await task


@pytest.fixture(scope="module")
async def service(
    test_database: DatabaseUnderTest,
    embeddings_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Service]:
    async for running in start_service(
        test_database,
        "stalled",
        workspaces_dir=tmp_path_factory.mktemp("workspaces"),
        embeddings_base_url=embeddings_url,
        embeddings_api_key="test-key",
        worker_stalled_seconds=STALLED_SECONDS,
    ):
        yield running


@pytest.fixture
def start_worker(service: Service, tmp_path: Path) -> Iterator[Any]:
    """Start `python -m app worker` processes on the service's database; whatever is left
    running at the end is stopped."""
    started: list[subprocess.Popen[bytes]] = []
    settings = service.settings
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url or "",
        "DATABASE_APP_ROLE": settings.database_app_role,
        "DATA_DIR": str(tmp_path / "data"),
        "WORKSPACES_DIR": str(settings.workspaces_dir),
        "EMBEDDINGS_BASE_URL": settings.embeddings_base_url or "",
        "EMBEDDINGS_API_KEY": "test-key",
        "LLM_MAX_RETRIES": "0",
        "WORKER_STALLED_SECONDS": str(STALLED_SECONDS),
    }

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            cwd=tmp_path,  # no .env of the checkout
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


async def wait_until(condition: Any, what: str, seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def embedding_requests_for(marker: str) -> int:
    return sum(
        any(marker in text for text in request["input"])
        for request in fake_openai.embedding_requests_seen
    )


async def test_a_job_of_a_killed_worker_runs_again_and_ingests_once(
    service: Service, start_worker: Any
) -> None:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as http:
        agent = await http.post(
            "/agents",
            json={
                "slug": f"k-{uuid.uuid4().hex[:8]}",
                "name": "Knows",
                "embedding_model": "text-embedding-3-small",
            },
            headers=service.headers(),
        )
        agent_id = agent.json()["id"]
        marker = uuid.uuid4().hex
        text = " ".join(f"Paragraph {i} of {marker} is slow to embed." for i in range(SENTENCES))
        added = await http.post(
            f"/agents/{agent_id}/knowledge-sources",
            json={"kind": "text", "name": "big", "text": text},
            headers=service.headers(),
        )
        assert added.status_code == 201, added.text
        source_id = added.json()["id"]

    def source() -> tuple[Any, ...]:
        return service.rows(
            "SELECT status, chunk_count FROM agent_knowledge_sources WHERE id = %s", source_id
        )[0]

    def jobs(status: str) -> list[tuple[Any, ...]]:
        return service.rows(
            "SELECT id, attempts FROM procrastinate_jobs WHERE task_name = %s AND status = %s "
            "AND args->>'source_id' = %s",
            INGEST_TASK,
            status,
            source_id,
        )

    first = start_worker()
    await wait_until(lambda: embedding_requests_for(marker) >= 1, "the first embedding batch")
    assert source()[0] == "processing"
    first.kill()  # SIGKILL: no graceful shutdown, no unregistering
    assert first.wait(timeout=10) == -9
    before_restart = embedding_requests_for(marker)
    assert source()[0] == "processing"
    [(job_id, _)] = jobs("doing")

    start_worker()
    await wait_until(lambda: source()[0] not in ("pending", "processing"), "the source to settle")

    status, chunk_count = source()
    assert status == "ready"
    chunks = service.rows(
        "SELECT count(*), count(DISTINCT chunk_index), min(chunk_index), max(chunk_index) "
        "FROM embeddings WHERE knowledge_source_id = %s",
        source_id,
    )
    assert chunks == [(chunk_count, chunk_count, 0, chunk_count - 1)]
    assert chunk_count > 64 * 4  # the kill came with batches still to embed
    # The same job ran again, from its first batch, in the new worker.
    assert embedding_requests_for(marker) - before_restart >= chunk_count // 64
    assert jobs("doing") == []
    assert service.rows("SELECT status FROM procrastinate_jobs WHERE id = %s", job_id) in (
        [],  # deleted once it succeeded (`delete_jobs="successful"`)
        [("succeeded",)],
    )
