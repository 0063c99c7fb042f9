"""Retention with a clock we control: conversations inactive for RETENTION_DAYS go with
their messages, files (rows and bytes), chunks and agent states; active ones stay; a dry run
only counts; a run interrupted between a commit and the removal of its bytes is finished by
the next one. Also `ajc cleanup` and `ajc ingest` as an operator runs them. On both storage
backends (the local disk, then S3)."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest

from app.conversations import retention
from app.core.db import create_engine, create_sessionmaker
from app.files.backends import create_storage
from app.files.backends.local import LocalStorage
from app.files.backends.s3 import S3Storage
from app.files.storage import INCOMING, Storage
from tests.conftest import DatabaseUnderTest, StorageUnderTest
from tests.runs.conftest import Service, new_agent, run_input, start_service
from tests.runs.test_runs import run

pytestmark = pytest.mark.asyncio(loop_scope="session")

SAMPLES = Path(__file__).parents[1] / "knowledge" / "samples"


@pytest.fixture(scope="module")
async def service(
    test_database: DatabaseUnderTest,
    storage_under_test: StorageUnderTest,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Service]:
    async for running in start_service(
        test_database,
        "retention",
        run_worker_in_process=True,
        **storage_under_test.settings(tmp_path_factory.mktemp("workspaces")),
    ):
        yield running


@pytest.fixture
def storage(service: Service) -> Storage:
    return create_storage(service.settings)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def conversation_with_everything(http: httpx.AsyncClient, service: Service) -> str:
    """A thread with messages (a no-LLM run), a file and its chunks, and a thread state."""
    agent_id = await new_agent(http, service, name="Keeps")
    created = await http.post(
        f"{service.base_url}/conversations", json={"agent_id": agent_id}, headers=service.headers()
    )
    thread = str(created.json()["id"])
    await run(http, service, agent_id, run_input(thread, (f"m-{thread}", "hello")))
    await http.post(
        f"{service.base_url}/conversations/{thread}/files",
        files={"file": ("notes.txt", (SAMPLES / "notes.txt").read_bytes(), "text/plain")},
        headers=service.headers(),
    )
    service.rows(
        "INSERT INTO agent_states (organization_id, user_id, agent_id, conversation_id, state) "
        "SELECT organization_id, user_id, agent_id, id, '{}' FROM conversations WHERE id = %s "
        "RETURNING id",
        thread,
    )
    for _ in range(300):  # the file's chunks, from the worker
        if service.rows("SELECT 1 FROM embeddings WHERE conversation_id = %s", thread):
            return thread
        await asyncio.sleep(0.1)
    raise AssertionError("the file was never ingested")


def age(service: Service, thread: str, days: int) -> None:
    service.rows(
        "UPDATE conversations SET last_activity_at = now() - make_interval(days => %s) "
        "WHERE id = %s RETURNING id",
        days,
        thread,
    )


def folder_of(service: Service, thread: str) -> str:
    [(organization_id, user_id)] = service.rows(
        "SELECT organization_id, user_id FROM conversations WHERE id = %s", thread
    )
    return f"{organization_id}/{user_id}/{thread}"


async def purge(
    service: Service, dry_run: bool = False, batch: int = retention.BATCH
) -> retention.Report:
    engine = create_engine(service.app_url, service.settings)
    try:
        return await retention.purge_inactive(
            create_sessionmaker(engine),
            create_storage(service.settings),
            datetime.now(UTC),
            30,
            dry_run=dry_run,
            batch=batch,
        )
    finally:
        await engine.dispose()


def counts(service: Service, thread: str) -> dict[str, Any]:
    return {
        table: service.rows(f"SELECT count(*) FROM {table} WHERE conversation_id = %s", thread)[0][
            0
        ]
        for table in ["messages", "files", "embeddings", "agent_states"]
    }


async def test_inactive_conversations_go_with_everything_they_own(
    http: httpx.AsyncClient, service: Service, storage: Storage
) -> None:
    old = await conversation_with_everything(http, service)
    recent = await conversation_with_everything(http, service)
    age(service, old, 31)
    age(service, recent, 29)
    old_folder, recent_folder = folder_of(service, old), folder_of(service, recent)
    owned = counts(service, old)
    assert all(value > 0 for value in owned.values()), owned
    assert await storage.keys(old_folder) != []

    dry = await purge(service, dry_run=True)

    assert (dry.conversations, dry.messages, dry.files) == (1, owned["messages"], owned["files"])
    assert (dry.embeddings, dry.agent_states) == (owned["embeddings"], owned["agent_states"])
    assert service.rows("SELECT count(*) FROM conversations WHERE id = %s", old) == [(1,)]

    report = await purge(service)

    assert report.conversations == 1
    assert report.messages == owned["messages"]
    assert service.rows("SELECT count(*) FROM conversations WHERE id = %s", old) == [(0,)]
    assert counts(service, old) == dict.fromkeys(owned, 0)
    assert await storage.keys(old_folder) == []
    assert service.rows("SELECT count(*) FROM conversations WHERE id = %s", recent) == [(1,)]
    assert all(value > 0 for value in counts(service, recent).values())
    assert await storage.keys(recent_folder) != []


async def stage_by_hand(storage: Storage, name: str, data: bytes, age_seconds: float) -> None:
    """A staged upload left `age_seconds` ago, as a crash before its row's commit leaves it.
    An object's age cannot be set on S3: the caller waits instead."""
    if isinstance(storage, S3Storage):
        await obstore.put_async(storage.store, f"{INCOMING}/{name}", data)
        return
    assert isinstance(storage, LocalStorage)
    path = storage.root / INCOMING / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (time.time() - age_seconds, time.time() - age_seconds))


async def test_a_rerun_finishes_what_an_interrupted_run_left(
    http: httpx.AsyncClient, service: Service, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = await conversation_with_everything(http, service)
    folder = folder_of(service, thread)
    # Interrupted after the commit, before the bytes went: the row is gone, the folder not.
    service.rows("DELETE FROM conversations WHERE id = %s RETURNING id", thread)
    if isinstance(storage, S3Storage):
        # S3 dates objects to the second: "a day" becomes two seconds, waited for.
        monkeypatch.setattr(retention, "INCOMING_MAX_AGE_SECONDS", 2)
        await stage_by_hand(storage, "interrupted-upload", b"half", 0)
        await asyncio.sleep(3)
    else:
        await stage_by_hand(storage, "interrupted-upload", b"half", 2 * 24 * 3600)
    await stage_by_hand(storage, "upload-in-flight", b"still arriving", 0)

    report = await purge(service)

    assert report.orphan_folders >= 1
    assert await storage.keys(folder) == []
    assert report.stale_uploads == 1
    assert await storage.keys(INCOMING) == [f"{INCOMING}/upload-in-flight"]


def storage_environment(service: Service) -> dict[str, str]:
    settings = service.settings
    if settings.storage_backend == "local":
        return {}
    assert settings.s3_secret_access_key is not None
    return {
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET": settings.s3_bucket or "",
        "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "S3_ACCESS_KEY_ID": settings.s3_access_key_id or "",
        "S3_SECRET_ACCESS_KEY": settings.s3_secret_access_key.get_secret_value(),
        "S3_KEY_PREFIX": settings.s3_key_prefix,
    }


def ajc(service: Service, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": service.app_url,
        "DATABASE_OWNER_URL": service.owner_url,
        "DATABASE_APP_ROLE": service.settings.database_app_role,
        "WORKSPACES_DIR": str(service.settings.workspaces_dir),
        "LOG_LEVEL": "WARNING",
        **storage_environment(service),
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_many_inactive_conversations_are_counted_once_and_purged_in_batches(
    http: httpx.AsyncClient, service: Service
) -> None:
    agent_id = await new_agent(http, service, name="Many")
    threads = []
    for _ in range(5):
        created = await http.post(
            f"{service.base_url}/conversations",
            json={"agent_id": agent_id, "title": "old"},
            headers=service.headers(),
        )
        assert created.status_code == 201
        threads.append(str(created.json()["id"]))
        age(service, threads[-1], 40)
    [(inactive,)] = service.rows(
        "SELECT count(*) FROM conversations WHERE last_activity_at < now() - interval '30 days'"
    )

    dry = await purge(service, dry_run=True, batch=2)

    assert dry.conversations == inactive
    report = await purge(service, batch=2)
    assert report.conversations == inactive
    assert service.rows("SELECT id FROM conversations WHERE id = ANY(%s::uuid[])", threads) == []


# On S3 only: the commands choose their storage as the service does, and a process that
# loads the embedding model twice costs twenty seconds.
@pytest.mark.parametrize("storage_under_test", ["s3"], indirect=True)
async def test_ajc_cleanup_dry_run_reports_and_deletes_nothing(
    http: httpx.AsyncClient, service: Service
) -> None:
    thread = await conversation_with_everything(http, service)
    age(service, thread, 45)

    done = await asyncio.to_thread(ajc, service, "cleanup", "--dry-run")

    assert done.returncode == 0, done.stderr
    assert "would delete, for 30 days without activity: 1 conversations" in done.stdout
    assert service.rows("SELECT count(*) FROM conversations WHERE id = %s", thread) == [(1,)]
    age(service, thread, 0)


@pytest.mark.parametrize("storage_under_test", ["s3"], indirect=True)
async def test_ajc_ingest_adds_a_source_and_ingests_it_with_progress(
    http: httpx.AsyncClient, service: Service, storage: Storage
) -> None:
    agent_id = await new_agent(http, service, name="Ingests")

    done = await asyncio.to_thread(
        ajc, service, "ingest", str(SAMPLES / "handbook.md"), "--agent", agent_id
    )

    assert done.returncode == 0, done.stderr
    assert "handbook.md: " in done.stdout and "chunks stored" in done.stdout
    assert "embedding handbook.md" in done.stderr  # the progress bar
    [source] = (
        await http.get(
            f"{service.base_url}/agents/{agent_id}/knowledge-sources", headers=service.headers()
        )
    ).json()
    assert (source["name"], source["status"]) == ("handbook.md", "ready")
    assert source["chunk_count"] > 0
    [(path,)] = service.rows(
        "SELECT storage_path FROM agent_knowledge_sources WHERE id = %s", source["id"]
    )
    assert await storage.read_bytes(path) == (SAMPLES / "handbook.md").read_bytes()
