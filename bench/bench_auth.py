"""Authenticated requests against /healthz, in one run.

Starts a fresh embedded database (on core 1, beside the load generator), then `ajc serve`
alone on core 0 (taskset) with development identity, and drives it with
CONCURRENCY clients: wrk for SECONDS per endpoint if it is installed (`apt-get install wrk`),
else this process's httpx for REQUESTS requests (slower than the server: figures compressed).
Prints requests/s, p50 and p99 for each endpoint and its ratio to /healthz.

    .venv/bin/python bench/bench_auth.py [--seconds 10] [--requests 4000] [--concurrency 64]
"""

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.core import migrations
from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
from app.core.embedded import open_database
from app.core.settings import Settings

PORT = 8765


def start_server(data_dir: Path, database_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "PORT": str(PORT),
        "LOG_LEVEL": "WARNING",
        "RUN_WORKER_IN_PROCESS": "false",
    }
    command = [sys.executable, "-m", "app", "serve"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


async def wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(300):
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the server did not become ready")


async def load(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], requests: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.get(path, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started), latencies


def wrk(
    path: str, headers: dict[str, str], seconds: int, concurrency: int
) -> tuple[float, float, float]:
    """wrk (Debian's package), when installed: a C load generator that a Python client on one
    core cannot match; its figures are the ones to record."""
    command = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    command += ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{PORT}{path}"], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"{path}: non-2xx answers\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def latency(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rate, latency("50"), latency("99")


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100)[int(fraction * 100) - 1] * 1000


async def main(requests: int, concurrency: int, seconds: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ajc-bench-"))
    if shutil.which("taskset"):
        # The API alone on core 0; the database and the load generator on core 1.
        os.sched_setaffinity(0, {1})
    settings = Settings.model_validate({"data_dir": data_dir})
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, data_dir, ignore_errors=True)
        urls = cleanup.enter_context(open_database(settings))
        await asyncio.to_thread(migrations.upgrade, urls.owner, settings.database_app_role)
        server = start_server(data_dir, urls.app)
        cleanup.callback(stop_server, server)
        await measure(data_dir, requests, concurrency, seconds)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGINT)
    server.wait(timeout=30)


async def measure(data_dir: Path, requests: int, concurrency: int, seconds: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{PORT}", limits=limits, timeout=30
    ) as client:
        await wait_ready(client)
        token = sign_session_token(
            development_key_pair(data_dir).private_pem,
            issuer=DEVELOPMENT_ISSUER,
            user_id="user_bench",
            organization_id="org_bench",
            role="admin",
        )
        auth = {"Authorization": f"Bearer {token}"}
        endpoints = [
            ("/healthz", {}),
            ("/me", auth),
            ("/organizations/current/agents", auth),
        ]
        for path, headers in endpoints:  # warm-up: connections, caches, provisioning
            await load(client, path, headers, concurrency * 4, concurrency)
        results: dict[str, tuple[float, float, float]] = {}
        for path, headers in endpoints:
            if shutil.which("wrk"):
                results[path] = wrk(path, headers, seconds, concurrency)
            else:
                rate, latencies = await load(client, path, headers, requests, concurrency)
                results[path] = (rate, percentile(latencies, 0.5), percentile(latencies, 0.99))
    tool = f"wrk, {seconds} s" if shutil.which("wrk") else f"httpx, {requests} requests"
    print(f"API on core 0, database and load on core 1; {tool} per endpoint, {concurrency} clients")
    print(f"{'endpoint':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}")
    baseline = results["/healthz"][0]
    for path, (rate, p50, p99) in results.items():
        print(f"{path:34} {rate:8.0f} {p50:8.1f} {p99:8.1f} {rate / baseline:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10, help="per endpoint, with wrk")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.concurrency, arguments.seconds))
