"""Two machines played on one: two `ajc serve` processes on ports of their own (no job worker
in either), one `ajc worker`, one PostgreSQL and the files in S3 (the tests' SeaweedFS), as
docker-compose.yml deploys them. Nothing is shared but what several machines would share:
the database, the bucket, the development keys (Clerk's, in production) and the model.

The processes start once for the module, in a scratch database; each test acts through one
API process and looks through the other."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import obstore
import psycopg
import pytest
from obstore.store import S3Store

from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
from app.jobs.queue import create_job_queue
from tests.conftest import TEST_BUCKET, DatabaseUnderTest
from tests.fake_openai import free_port
from tests.seaweedfs import S3Server

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 30.0
STOP_SECONDS = 15.0
RETENTION_DAYS = 1
PURGE_INACTIVE = "conversations:purge_inactive"
# The caller's settings stay out of the processes: they get only what is set here.
NOT_INHERITED = (
    "APP_ENV", "API_WORKERS", "CLERK_", "DATABASE_", "DATA_DIR", "EMBEDDED_", "HOST", "LLM_",
    "OPENAI_", "OTEL_", "PORT", "PROMETHEUS_", "RATE_LIMIT", "RETENTION_", "RUN_", "S3_",
    "STORAGE_", "WORKSPACES_DIR",
)  # fmt: skip


@dataclass
class Process:
    name: str
    popen: "subprocess.Popen[bytes]"
    log: Path

    def tail(self) -> str:
        return f"--- {self.name} (exit {self.popen.poll()}):\n{self.log.read_text()[-3000:]}"


@dataclass
class Machines:
    api: tuple[str, str]  # the two API processes' base URLs
    owner_url: str
    data_dir: Path
    bucket: S3Store  # the bucket, under the processes' key prefix
    processes: list[Process]

    def headers(self, user: str = "user_machines", org: str = "org_machines") -> dict[str, str]:
        token = sign_session_token(
            development_key_pair(self.data_dir).private_pem,
            issuer=DEVELOPMENT_ISSUER,
            user_id=user,
            organization_id=org,
            role="admin",
        )
        return {"Authorization": f"Bearer {token}"}

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.owner_url) as connection:
            return connection.execute(sql, params).fetchall()

    def keys(self, folder: str) -> list[str]:
        return [meta["path"] for batch in obstore.list(self.bucket, folder) for meta in batch]

    def wait_until(self, condition: Callable[[], Any], what: str, seconds: float = 20) -> Any:
        """`condition()` once it is true; after `seconds`, fails with the processes' logs."""
        deadline = time.monotonic() + seconds
        while not (found := condition()):
            exited = any(process.popen.poll() is not None for process in self.processes)
            if exited or time.monotonic() > deadline:
                logs = "\n".join(process.tail() for process in self.processes)
                raise AssertionError(f"{what}: not within {seconds} s\n{logs}")
            time.sleep(0.1)
        return found


@contextmanager
def running(name: str, command: list[str], env: dict[str, str], folder: Path) -> Iterator[Process]:
    """A process with its output in `folder`, stopped on exit as an orchestrator does: SIGTERM,
    then SIGKILL if it outlives STOP_SECONDS."""
    log = folder / f"{name}.log"
    with log.open("wb") as output:
        popen = subprocess.Popen(command, env=env, cwd=folder, stdout=output, stderr=output)
    process = Process(name, popen, log)
    try:
        yield process
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def machines(
    test_database: DatabaseUnderTest, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Machines]:
    folder = tmp_path_factory.mktemp("machines")
    # Made before the processes start, so that they all read the same pair.
    development_key_pair(folder)
    prefix = f"machines-{uuid.uuid4().hex[:12]}"
    model_port, ports = free_port(), (free_port(), free_port())
    with test_database.scratch_database("machines") as roles:
        owner_url = test_database.url(roles.owner, roles.database)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
        env = {
            **inherited,
            "DATA_DIR": str(folder),
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": test_database.url(roles.app, roles.database),
            "DATABASE_APP_ROLE": roles.app,
            "RUN_WORKER_IN_PROCESS": "false",
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": s3_server.endpoint_url,
            "S3_REGION": s3_server.region,
            "S3_BUCKET": TEST_BUCKET,
            "S3_ACCESS_KEY_ID": s3_server.access_key,
            "S3_SECRET_ACCESS_KEY": s3_server.secret_key,
            "S3_KEY_PREFIX": prefix,
            "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
            "OPENAI_API_KEY": "test-key",
            "LLM_MODEL": "fake-model",
            "LLM_MAX_RETRIES": "0",
            "RETENTION_DAYS": str(RETENTION_DAYS),
        }
        model = [sys.executable, "-m", "uvicorn", "tests.fake_openai:app", "--port"]
        ajc = [sys.executable, "-m", "app"]
        # The one-shot `ajc migrate`: the schema, then the environment's model registered.
        migrate = {**env, "DATABASE_OWNER_URL": owner_url}
        subprocess.run([*ajc, "migrate"], env=migrate, cwd=ROOT, check=True)
        with ExitStack() as stack:
            processes = [
                stack.enter_context(
                    running(
                        "model",
                        [*model, str(model_port), "--log-level", "warning"],
                        {**inherited, "PYTHONPATH": str(ROOT)},
                        folder,
                    )
                ),
                stack.enter_context(running("worker", [*ajc, "worker"], env, folder)),
                *(
                    stack.enter_context(
                        running(f"api-{i}", [*ajc, "serve", "--port", str(port)], env, folder)
                    )
                    for i, port in enumerate(ports, 1)
                ),
            ]
            bucket = S3Store(
                TEST_BUCKET,
                prefix=prefix,
                endpoint=s3_server.endpoint_url,
                region=s3_server.region,
                access_key_id=s3_server.access_key,
                secret_access_key=s3_server.secret_key,
                allow_http=True,
                virtual_hosted_style_request=False,
            )
            found = Machines(
                api=(f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"),
                owner_url=owner_url.replace("postgresql+asyncpg://", "postgresql://"),
                data_dir=folder,
                bucket=bucket,
                processes=processes,
            )
            for base in found.api:
                found.wait_until(partial(answers, f"{base}/readyz"), f"{base} ready", START_SECONDS)
            found.wait_until(
                lambda: found.rows("SELECT 1 FROM procrastinate_workers"),
                "the worker registered",
                START_SECONDS,
            )
            yield found


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def new_agent(http: httpx.Client, machines: Machines, base: str) -> str:
    response = http.post(
        f"{base}/agents",
        json={
            "slug": f"two-{uuid.uuid4().hex[:8]}",
            "name": "Two machines",
            # Vectors without a model to load: the worker and the API must agree on them.
            "embedding_model": "feature-hashing-384",
        },
        headers=machines.headers(),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def new_conversation_with_a_file(
    http: httpx.Client, machines: Machines, base: str, content: bytes
) -> tuple[str, str]:
    """A conversation and a text file in it, both made through `base`: their ids."""
    agent_id = new_agent(http, machines, base)
    created = http.post(
        f"{base}/conversations", json={"agent_id": agent_id}, headers=machines.headers()
    )
    assert created.status_code == 201, created.text
    conversation_id = str(created.json()["id"])
    uploaded = http.post(
        f"{base}/conversations/{conversation_id}/files",
        files={"file": ("notes.txt", content, "text/plain")},
        headers=machines.headers(),
    )
    assert uploaded.status_code == 201, uploaded.text
    return conversation_id, str(uploaded.json()["id"])


def test_a_new_users_first_requests_reach_both_machines_at_once(machines: Machines) -> None:
    """Each process makes the user and organization it does not know yet: both at once must
    agree on one of each."""
    headers = machines.headers("user_both_at_once", "org_both_at_once")
    answered: list[httpx.Response] = []

    def ask(base: str) -> None:
        answered.append(httpx.get(f"{base}/me", headers=headers, timeout=30))

    threads = [
        threading.Thread(target=ask, args=(base,)) for base in machines.api for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [response.status_code for response in answered] == [200] * 6
    assert len({response.json()["organization"]["id"] for response in answered}) == 1
    assert len({response.json()["user"]["id"] for response in answered}) == 1


def test_a_file_uploaded_through_one_machine_is_downloaded_through_the_other(
    http: httpx.Client, machines: Machines
) -> None:
    first, second = machines.api
    content = "".join(f"line {i}: {uuid.uuid4()}\n" for i in range(8000)).encode()  # ~350 KB
    _, file_id = new_conversation_with_a_file(http, machines, first, content)

    downloaded = http.get(f"{second}/files/{file_id}/content", headers=machines.headers())

    assert downloaded.status_code == 200
    assert downloaded.content == content


def test_a_run_streamed_by_one_machine_is_cancelled_through_the_other(
    http: httpx.Client, machines: Machines
) -> None:
    first, second = machines.api
    agent_id = new_agent(http, machines, first)
    run_id = str(uuid.uuid4())
    body = {
        "threadId": str(uuid.uuid4()),
        "runId": run_id,
        "messages": [{"id": f"m-{run_id}", "role": "user", "content": "go slowly"}],
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }
    events: list[dict[str, Any]] = []
    cancel_status = None
    with http.stream(
        "POST", f"{first}/agents/{agent_id}/runs", json=body, headers=machines.headers()
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(json.loads(line.removeprefix("data: ")))
            tokens = [event for event in events if event["type"] == "TEXT_MESSAGE_CONTENT"]
            if len(tokens) == 3 and cancel_status is None:
                cancelled = http.post(f"{second}/runs/{run_id}/cancel", headers=machines.headers())
                cancel_status = cancelled.status_code

    assert cancel_status == 202
    assert events[-1]["type"] == "RUN_ERROR"
    assert events[-1]["code"] == "cancelled"
    message_id = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    [(status, content)] = machines.wait_until(
        lambda: machines.rows(
            "SELECT status, content FROM messages WHERE external_id = %s AND status <> 'streaming'",
            message_id,
        ),
        "the answer saved",
    )
    assert status == "cancelled"
    assert content.count("t") < 200  # stopped well before the model's 200 tokens


def test_a_knowledge_source_added_through_one_machine_is_ingested_by_the_worker(
    http: httpx.Client, machines: Machines
) -> None:
    first, second = machines.api
    agent_id = new_agent(http, machines, first)
    text = "The lighthouse keeper logs the zanzibarite tide tables every morning."
    added = http.post(
        f"{first}/agents/{agent_id}/knowledge-sources",
        json={"kind": "text", "name": "Tides", "text": text},
        headers=machines.headers(),
    )
    assert added.status_code == 201, added.text
    source_id = added.json()["id"]

    def ingested() -> dict[str, Any] | None:
        source = http.get(
            f"{second}/agents/{agent_id}/knowledge-sources/{source_id}",
            headers=machines.headers(),
        ).json()
        return source if source["status"] in ("ready", "failed") else None

    source = machines.wait_until(ingested, "the source ingested")
    assert source["status"] == "ready", source["error"]
    assert source["chunk_count"] >= 1
    found = http.post(
        f"{second}/agents/{agent_id}/search",
        json={"query": "zanzibarite tide tables"},
        headers=machines.headers(),
    )
    assert found.status_code == 200, found.text
    assert found.json()["embedding_model"] == "feature-hashing-384"
    [hit, *_] = found.json()["hits"]
    assert hit["citation"]["source_id"] == source_id
    assert "zanzibarite" in hit["content"]


def test_retention_run_by_the_worker_removes_the_conversations_objects_from_s3(
    http: httpx.Client, machines: Machines
) -> None:
    first, second = machines.api
    old, _ = new_conversation_with_a_file(http, machines, first, b"old notes about herons\n")
    recent, recent_file = new_conversation_with_a_file(http, machines, first, b"recent notes\n")
    folders = {}
    for conversation_id in (old, recent):
        [(organization_id, user_id)] = machines.rows(
            "SELECT organization_id, user_id FROM conversations WHERE id = %s", conversation_id
        )
        folders[conversation_id] = f"{organization_id}/{user_id}/{conversation_id}"
        # The worker ingests the file from the bucket the API wrote it to.
        chunks = partial(
            machines.rows, "SELECT 1 FROM embeddings WHERE conversation_id = %s", conversation_id
        )
        machines.wait_until(chunks, "the file ingested by the worker")
    assert machines.keys(folders[old]) != []
    machines.rows(
        "UPDATE conversations SET last_activity_at = now() - make_interval(days => %s) "
        "WHERE id = %s RETURNING id",
        RETENTION_DAYS + 1,
        old,
    )

    # What the worker's daily schedule defers, now.
    queue = create_job_queue(machines.owner_url)
    with queue.open():
        job_id = queue.configure_task(PURGE_INACTIVE).defer(timestamp=int(time.time()))

    def job_ended() -> bool:
        # A job that succeeded is deleted (`delete_jobs="successful"`); one that failed stays.
        left = machines.rows("SELECT status FROM procrastinate_jobs WHERE id = %s", job_id)
        return left in ([], [("failed",)])

    machines.wait_until(job_ended, "the retention job done")
    assert machines.rows("SELECT status FROM procrastinate_jobs WHERE id = %s", job_id) == []

    assert machines.keys(folders[old]) == []
    gone = http.get(f"{second}/conversations/{old}", headers=machines.headers())
    assert gone.status_code == 404
    assert machines.keys(folders[recent]) != []
    kept = http.get(f"{second}/files/{recent_file}/content", headers=machines.headers())
    assert kept.content == b"recent notes\n"
