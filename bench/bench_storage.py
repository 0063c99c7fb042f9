"""File storage: the S3 client, chosen by measurement, and the service's memory while a large
file goes through it, on each backend.

1. The clients (bench/storage_clients.py, each in a fresh process, against SeaweedFS on
   loopback): obstore and, if installed, aioboto3; a 20 MB file up and down, 200 files of
   4 KB up and down 16 at a time, and the process's peak memory. The median of RUNS passes.
2. The service: `ajc serve` (one process, a fresh embedded database) with STORAGE_BACKEND
   local, then s3 (the same SeaweedFS); a FILE_MEGABYTES file uploaded through
   `POST /conversations/{id}/files` and downloaded through `GET /files/{id}/content`, both
   streamed by the client from and to disk. Printed: the server process's peak resident
   memory (VmHWM) after start-up and a small warm-up upload, after the upload, and after the
   download. A backend that held the file in memory would add its size to the peak.

    .venv/bin/python -m bench.bench_storage [--runs 3] [--megabytes 100]
        [--clients-python PYTHON]  # a Python with aioboto3 too (it is no dependency)
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from app.core import migrations
from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
from app.core.embedded import open_database
from app.core.settings import Settings
from tests.seaweedfs import S3Server, free_port, running_seaweedfs

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench"


def compare_clients(server: S3Server, runs: int, python: str) -> None:
    print(f"S3 clients against SeaweedFS on loopback, median of {runs} runs (fresh process each)")
    print(f"{'client':10} {'20 MB up':>9} {'20 MB down':>11} {'200 up':>8} {'200 down':>9}", end="")
    print(f" {'after import':>13} {'peak':>8}")
    for client in ("obstore", "aioboto3"):
        figures: list[dict[str, float]] = []
        for _ in range(runs):
            done = subprocess.run(
                [python, "-m", "bench.storage_clients", server.endpoint_url, BUCKET, client],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"
                print(f"{client:10} not measured: {reason}")
                break
            figures.append(json.loads(done.stdout))
        if len(figures) < runs:
            continue

        def median(name: str, figures: list[dict[str, float]] = figures) -> float:
            return statistics.median(figure[name] for figure in figures)

        print(
            f"{client:10} {median('large_up_s'):8.2f}s {median('large_down_s'):10.2f}s "
            f"{median('small_up_s'):7.2f}s {median('small_down_s'):8.2f}s "
            f"{median('imported_mb'):10.0f} MB {median('peak_mb'):5.0f} MB"
        )


def same_size(first: Path, second: Path) -> bool:
    return first.stat().st_size == second.stat().st_size


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_server(data_dir: Path, database_url: str, port: int, env: dict[str, str]) -> Any:
    environment = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "RUN_WORKER_IN_PROCESS": "false",
        "RATE_LIMITS_ENABLED": "false",
        "FILE_MAX_BYTES": str(1024 * 1024 * 1024),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app", "serve"], env=environment, stdout=subprocess.DEVNULL
    )


@contextlib.contextmanager
def stopping(process: Any) -> Iterator[None]:
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


async def through_the_service(
    port: int, pid: int, token: str, large: Path, out: Path
) -> tuple[float, float, float, float, float]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=300
    ) as client:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        agent = await client.post("/agents", json={"slug": f"b-{port}", "name": "Bench"})
        conversation = await client.post("/conversations", json={"agent_id": agent.json()["id"]})
        conversation_id = conversation.json()["id"]
        warm = await client.post(
            f"/conversations/{conversation_id}/files",
            files={"file": ("warm.txt", b"warm-up", "text/plain")},
        )
        await client.get(f"/files/{warm.json()['id']}/content")
        before = peak_mb(pid)
        started = time.perf_counter()
        with large.open("rb") as source:
            uploaded = await client.post(
                f"/conversations/{conversation_id}/files",
                files={"file": ("large.pdf", source, "application/pdf")},
            )
        upload_seconds = time.perf_counter() - started
        if uploaded.status_code != 201:
            raise SystemExit(f"upload: {uploaded.status_code} {uploaded.text}")
        after_upload = peak_mb(pid)
        started = time.perf_counter()
        async with client.stream("GET", f"/files/{uploaded.json()['id']}/content") as served:
            if served.status_code != 200:
                raise SystemExit(f"download: {served.status_code}")
            with out.open("wb") as target:
                async for piece in served.aiter_bytes(1024 * 1024):
                    target.write(piece)
        download_seconds = time.perf_counter() - started
        after_download = peak_mb(pid)
    if not same_size(out, large):
        raise SystemExit("the file came back with another size")
    return before, after_upload, after_download, upload_seconds, download_seconds


async def measure_service(server: S3Server, megabytes: int, folder: Path) -> None:
    large, out = folder / "large.pdf", folder / "out"
    with large.open("wb") as target:  # a PDF's signature, then random bytes
        target.write(b"%PDF-1.4\n")
        for _ in range(megabytes):
            target.write(os.urandom(1024 * 1024))
    data_dir = folder / "data"
    settings = Settings.model_validate({"data_dir": data_dir})
    backends = {
        "local": {"STORAGE_BACKEND": "local", "WORKSPACES_DIR": str(folder / "workspaces")},
        "s3": {
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": BUCKET,
            "S3_ENDPOINT_URL": server.endpoint_url,
            "S3_ACCESS_KEY_ID": server.access_key,
            "S3_SECRET_ACCESS_KEY": server.secret_key,
        },
    }
    print(
        f"\nthe service (`ajc serve`, one process): a {megabytes} MB file up and down, "
        "peak resident memory of the server process"
    )
    print(f"{'backend':8} {'after start':>12} {'after upload':>13} {'after download':>15}", end="")
    print(f" {'upload':>8} {'download':>9}")
    with open_database(settings) as urls:
        await asyncio.to_thread(migrations.upgrade, urls.owner, settings.database_app_role)
        token = sign_session_token(
            development_key_pair(data_dir).private_pem,
            issuer=DEVELOPMENT_ISSUER,
            user_id="user_bench",
            organization_id="org_bench",
            role="admin",
        )
        for name, env in backends.items():
            port = free_port()
            process = start_server(data_dir, urls.app, port, env)
            with stopping(process):
                before, uploaded, downloaded, up_s, down_s = await through_the_service(
                    port, process.pid, token, large, out
                )
            print(
                f"{name:8} {before:9.0f} MB {uploaded:10.0f} MB {downloaded:12.0f} MB "
                f"{up_s:7.2f}s {down_s:8.2f}s"
            )


async def main(runs: int, megabytes: int, python: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ajc-bench-storage-"))
    try:
        with running_seaweedfs(folder / "seaweedfs") as server:
            server.create_bucket(BUCKET)
            compare_clients(server, runs, python)
            await measure_service(server, megabytes, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument(
        "--clients-python",
        default=sys.executable,
        help="the Python that runs the clients' part: one with aioboto3 beside obstore",
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.megabytes, arguments.clients_python))
