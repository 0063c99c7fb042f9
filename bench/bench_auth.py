"""Authenticated requests against /healthz, in one run.

Starts a fresh embedded database (on core 1, beside the load generator), then `ajc serve`
alone on core 0 (taskset) with development identity, and drives it with
CONCURRENCY clients: wrk for SECONDS per endpoint if it is installed (`apt-get install wrk`),
else this process's httpx for REQUESTS requests (slower than the server: figures compressed).
Prints requests/s, p50 and p99 for each endpoint and its ratio to /healthz.

Then /healthz and /me again with tracing on (OTEL_EXPORTER_OTLP_ENDPOINT aimed at
`Collector`, a stand-in in this process that answers every export and keeps nothing), every
request traced and one in ten (`TRACING_PASSES`): what tracing costs a request when it is
on. (Unset, it costs nothing by construction: none of OpenTelemetry's SDK is imported,
tests/observability/test_tracing.py checks that.)

Then the same for a hand-written reference (`reference_app`, served the same way on core 0):
the path the issue's goal was set from, an RS256 check of every token with pyjwt and one
asyncpg query on a bare asyncpg pool, JSON written by hand, no framework middleware, next to
the same app's own /healthz. It says what any route with one database round trip can reach
on the machine at hand.

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
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from app.core import migrations
from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
from app.core.embedded import open_database
from app.core.settings import Settings

PORT = 8765
ROOT = Path(__file__).resolve().parent.parent


REFERENCE_PORT = PORT + 1
# The SDK's own sampler variables: every request traced, and one in ten (what a busy
# deployment would set).
TRACING_PASSES = {
    "every request": {},
    "one in ten sampled": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    },
}


def reference_app() -> Any:
    """The hand-written path: `uvicorn --factory bench.bench_auth:reference_app`, configured
    by REFERENCE_DATABASE_URL and REFERENCE_PUBLIC_KEY (a PEM file)."""
    import json

    import asyncpg
    import jwt

    public_key = Path(os.environ["REFERENCE_PUBLIC_KEY"]).read_bytes()
    pool: asyncpg.Pool | None = None

    async def answer(send: Any, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal pool
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            pool = await asyncpg.create_pool(
                os.environ["REFERENCE_DATABASE_URL"], min_size=20, max_size=20
            )
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/healthz":
            await answer(send, 200, b'{"status":"ok"}')
            return
        authorization = dict(scope["headers"]).get(b"authorization", b"")
        try:
            claims = jwt.decode(
                authorization.removeprefix(b"Bearer "),
                public_key,
                algorithms=["RS256"],
                issuer=DEVELOPMENT_ISSUER,
            )
        except jwt.PyJWTError:
            await answer(send, 401, b'{"detail":"invalid token"}')
            return
        assert pool is not None
        row = await pool.fetchrow(
            "SELECT id, clerk_id, email FROM users WHERE clerk_id = $1", claims["sub"]
        )
        body = {"id": str(row["id"]), "clerk_id": row["clerk_id"], "email": row["email"]}
        await answer(send, 200, json.dumps(body).encode())

    return app


def start_reference(data_dir: Path, database_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REFERENCE_DATABASE_URL": database_url.replace("postgresql+asyncpg://", "postgresql://"),
        "REFERENCE_PUBLIC_KEY": str(data_dir / "reference-public.pem"),
    }
    (data_dir / "reference-public.pem").write_bytes(development_key_pair(data_dir).public_pem)
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench.bench_auth:reference_app"]
    command += ["--port", str(REFERENCE_PORT), "--log-level", "warning", "--no-access-log"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)


class Collector:
    """A stand-in OpenTelemetry collector on a loopback port (OTLP over HTTP): it answers
    every export at once and keeps nothing, so a traced pass measures the spans' cost in the
    service, not a collector's."""

    def __init__(self) -> None:
        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_server(
    data_dir: Path, database_url: str, tracing: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("OTEL_")},
        **(tracing or {}),
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


async def wait_ready(client: httpx.AsyncClient, path: str) -> None:
    for _ in range(300):
        try:
            if (await client.get(path)).status_code == 200:
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
    port: int, path: str, headers: dict[str, str], seconds: int, concurrency: int
) -> tuple[float, float, float]:
    """wrk (Debian's package), when installed: a C load generator that a Python client on one
    core cannot match; its figures are the ones to record."""
    command = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    command += ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
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


Results = dict[str, tuple[float, float, float]]


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
        token = sign_session_token(
            development_key_pair(data_dir).private_pem,
            issuer=DEVELOPMENT_ISSUER,
            user_id="user_bench",
            organization_id="org_bench",
            role="admin",
        )
        auth = {"Authorization": f"Bearer {token}"}
        with stopping(start_server(data_dir, urls.app)):
            service = await measure(
                PORT,
                "/readyz",
                [("/healthz", {}), ("/me", auth), ("/organizations/current/agents", auth)],
                requests,
                concurrency,
                seconds,
            )
        collector = Collector()
        cleanup.callback(collector.close)
        traced: dict[str, Results] = {}
        for label, sampling in TRACING_PASSES.items():
            tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, **sampling}
            with stopping(start_server(data_dir, urls.app, tracing)):
                traced[label] = await measure(
                    PORT,
                    "/readyz",
                    [("/healthz", {}), ("/me", auth)],
                    requests,
                    concurrency,
                    seconds,
                )
        with stopping(start_reference(data_dir, urls.app)):
            reference = await measure(
                REFERENCE_PORT,
                "/healthz",
                [("/healthz", {}), ("/me", auth)],
                requests,
                concurrency,
                seconds,
            )
    tool = f"wrk, {seconds} s" if shutil.which("wrk") else f"httpx, {requests} requests"
    print(f"API on core 0, database and load on core 1; {tool} per endpoint, {concurrency} clients")
    report("the service", service)
    for label, results in traced.items():
        report(f"the service, tracing on, {label} (to a collector that drops)", results)
    report("hand-written reference (RS256 per request, one asyncpg query, no framework)", reference)
    for label, results in traced.items():
        print(
            f"tracing on, {label}: /me at {results['/me'][0] / service['/me'][0]:.2f} of the "
            f"requests/s it serves with tracing unset (p50 {results['/me'][1]:.1f} ms against "
            f"{service['/me'][1]:.1f})"
        )
    print(
        f"the service's /me is {service['/me'][0] / reference['/me'][0]:.2f} of the "
        "hand-written path's requests/s"
    )


@contextlib.contextmanager
def stopping(server: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


async def measure(
    port: int,
    ready_path: str,
    endpoints: list[tuple[str, dict[str, str]]],
    requests: int,
    concurrency: int,
    seconds: int,
) -> Results:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as client:
        await wait_ready(client, ready_path)
        for path, headers in endpoints:  # warm-up: connections, caches, provisioning
            await load(client, path, headers, concurrency * 4, concurrency)
        results: Results = {}
        for path, headers in endpoints:
            if shutil.which("wrk"):
                results[path] = wrk(port, path, headers, seconds, concurrency)
            else:
                rate, latencies = await load(client, path, headers, requests, concurrency)
                results[path] = (rate, percentile(latencies, 0.5), percentile(latencies, 0.99))
    return results


def report(title: str, results: Results) -> None:
    print(f"\n{title}")
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
