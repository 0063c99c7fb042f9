"""Time to first token added by the service, in one run.

Starts a fresh embedded database, the test model server (`tests/fake_openai.py`, no delay,
run by uvicorn in a subprocess) and `ajc serve` alone on core 0 (taskset) pointed at it;
the database, the model server and this client share the other cores. Then, after WARMUP
rounds, RUNS sequential rounds each time two requests from the same httpx client (keep-alive),
in alternating order so that drift weighs on both alike:

- direct: the chat-completions request the service would send (stream, usage chunk), straight
  to the model server, timed to its first chunk with content;
- via the service: `POST /agents/{id}/runs` (AG-UI), timed to the first TEXT_MESSAGE_CONTENT.

Each round is a new thread (a new conversation, as a first message is): the history stays
empty, so round 200 costs what round 1 does; a reused thread would grow by two messages a
round. Streams are read to their end, untimed, so that no run overlaps the next.
Prints p50 and p99 of both and their differences (goal: under 10 ms added at p50), and the
CPU the service spent per run (`ajc serve` and its children, while only runs reached it).

    .venv/bin/python bench/bench_ttft.py [--runs 200] [--warmup 20]
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from bench_streams import TICKS, cpu_ticks, parents, tree

from app.core import migrations
from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
from app.core.embedded import open_database
from app.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MODEL = "fake-model"
PROMPT = "Hi there"  # none of the fake model's steering words: "Hello from the fake model."
GOAL_MS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(command: list[str], cores: set[int] | None) -> list[str]:
    if cores is None:
        return command
    return ["taskset", "-c", ",".join(map(str, sorted(cores))), *command]


def start_model_server(port: int, cores: set[int] | None) -> subprocess.Popen[bytes]:
    # `-m uvicorn` from the repository's root puts it on sys.path: `tests` is importable there.
    command = [sys.executable, "-m", "uvicorn", "tests.fake_openai:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(
        pinned(command, cores), cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True
    )


def start_server(
    data_dir: Path, database_url: str, port: int, model_port: int, cores: set[int] | None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "RUN_WORKER_IN_PROCESS": "false",
        "API_WORKERS": "1",  # one process, alone on its core
        "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
        "OPENAI_API_KEY": "bench-key",
        "LLM_MODEL": MODEL,
        "LLM_MAX_RETRIES": "0",  # a failing model shows as an error, not as a slow first token
        # One user opens every run, faster than a person: the per-user limit would refuse them.
        "RATE_LIMITS_ENABLED": "false",
    }
    command = pinned([sys.executable, "-m", "app", "serve"], cores)
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """One SIGINT (a graceful stop), from here only: the children have sessions of their own,
    so that a Ctrl-C in the terminal does not reach them first and make this a second one."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_ready(
    client: httpx.AsyncClient, url: str, process: subprocess.Popen[bytes], expected: set[int]
) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {process.returncode}")
        try:
            if (await client.get(url)).status_code in expected:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


def parse(line: str) -> dict[str, Any] | None:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return None
    event: dict[str, Any] = json.loads(line.removeprefix("data: "))
    return event


async def first_token(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], **kwargs: Any
) -> float:
    """Seconds from sending `body` to the first text: a chat-completions chunk with content,
    or an AG-UI TEXT_MESSAGE_CONTENT event. The stream is then read to its end."""
    started = time.perf_counter()
    elapsed: float | None = None
    seen: list[str] = []
    async with client.stream("POST", url, json=body, **kwargs) as response:
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {(await response.aread()).decode()}")
        async for line in response.aiter_lines():
            event = parse(line)
            if event is None:
                continue
            if elapsed is None:
                choices = event.get("choices") or [{}]
                if event.get("type") == "TEXT_MESSAGE_CONTENT" or choices[0].get("delta", {}).get(
                    "content"
                ):
                    elapsed = time.perf_counter() - started
            if event.get("type") == "RUN_ERROR":
                raise SystemExit(f"{url}: the run failed: {event}")
            seen.append(str(event.get("type") or event.get("object")))
    if elapsed is None:
        raise SystemExit(f"{url}: no text in the stream ({seen})")
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100)[int(fraction * 100) - 1] * 1000


async def main(runs: int, warmup: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ajc-bench-"))
    service_cores: set[int] | None = None
    other_cores: set[int] | None = None
    cores = os.sched_getaffinity(0)
    if shutil.which("taskset") and 0 in cores and len(cores) > 1:
        # The API alone on core 0; the database (started below), model server and client
        # on the others.
        service_cores, other_cores = {0}, cores - {0}
        os.sched_setaffinity(0, other_cores)
    settings = Settings.model_validate({"data_dir": data_dir})
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, data_dir, ignore_errors=True)
        urls = cleanup.enter_context(open_database(settings))
        await asyncio.to_thread(migrations.upgrade, urls.owner, settings.database_app_role)
        model_port, port = free_port(), free_port()
        model_server = start_model_server(model_port, other_cores)
        cleanup.callback(stop, model_server)
        server = start_server(data_dir, urls.app, port, model_port, service_cores)
        cleanup.callback(stop, server)
        async with httpx.AsyncClient(timeout=30) as client:
            # The model server has only POST /v1/chat/completions: any HTTP answer is ready.
            model_url = f"http://127.0.0.1:{model_port}/v1/chat/completions"
            await wait_ready(client, model_url, model_server, {405})
            await wait_ready(client, f"http://127.0.0.1:{port}/readyz", server, {200})
            direct, via, cpu = await measure(
                client, data_dir, port, model_url, runs, warmup, server.pid
            )
    report(direct, via, cpu, runs, warmup, service_cores is not None)


def api_cpu_seconds(serve: int) -> float:
    """CPU used so far by `ajc serve` and its children."""
    return sum(cpu_ticks(pid) for pid in tree(serve, parents())) / TICKS


async def measure(
    client: httpx.AsyncClient,
    data_dir: Path,
    port: int,
    model_url: str,
    runs: int,
    warmup: int,
    serve: int,
) -> tuple[list[float], list[float], float]:
    """Times to first token, direct and via the service; the service's CPU per run."""
    token = sign_session_token(
        development_key_pair(data_dir).private_pem,
        issuer=DEVELOPMENT_ISSUER,
        user_id="user_bench",
        organization_id="org_bench",
        role="admin",
    )
    auth = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}"
    created = await client.post(
        f"{base}/agents", json={"slug": "ttft", "name": "TTFT bench"}, headers=auth
    )
    if created.status_code != 201:
        raise SystemExit(f"POST /agents: {created.status_code} {created.text}")
    runs_url = f"{base}/agents/{created.json()['id']}/runs"
    # What the service sends the model for a first message to an agent without instructions.
    completion = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    model_auth = {"Authorization": "Bearer bench-key"}

    async def via_service() -> float:
        body = {
            "threadId": str(uuid.uuid4()),
            "runId": str(uuid.uuid4()),
            "messages": [{"id": str(uuid.uuid4()), "role": "user", "content": PROMPT}],
            "state": {},
            "tools": [],
            "context": [],
            "forwardedProps": {},
        }
        return await first_token(client, runs_url, body, headers=auth)

    direct: list[float] = []
    via: list[float] = []
    cpu_before = 0.0
    for round_ in range(warmup + runs):
        if round_ == warmup:
            cpu_before = api_cpu_seconds(serve)
        if round_ % 2:
            service_time = await via_service()
            direct_time = await first_token(client, model_url, completion, headers=model_auth)
        else:
            direct_time = await first_token(client, model_url, completion, headers=model_auth)
            service_time = await via_service()
        if round_ >= warmup:
            direct.append(direct_time)
            via.append(service_time)
    # The direct requests cost the service nothing: its CPU is the runs'.
    return direct, via, (api_cpu_seconds(serve) - cpu_before) / runs


def report(
    direct: list[float], via: list[float], cpu: float, runs: int, warmup: int, pinned: bool
) -> None:
    placement = "API on core 0, the rest elsewhere" if pinned else "no taskset: no pinning"
    print(f"{placement}; {runs} sequential runs of each after {warmup} warm-up, new thread each")
    print(f"{'time to first token':24} {'p50 ms':>8} {'p99 ms':>8}")
    p50s = (percentile(direct, 0.5), percentile(via, 0.5))
    p99s = (percentile(direct, 0.99), percentile(via, 0.99))
    print(f"{'direct to model server':24} {p50s[0]:8.2f} {p99s[0]:8.2f}")
    print(f"{'via the service':24} {p50s[1]:8.2f} {p99s[1]:8.2f}")
    added = p50s[1] - p50s[0]
    print(f"{'added by the service':24} {added:8.2f} {p99s[1] - p99s[0]:8.2f}")
    print(f"service CPU per run (its whole stream, a few tokens): {cpu * 1000:.2f} ms")
    verdict = "met" if added < GOAL_MS else "NOT met"
    print(f"goal: under {GOAL_MS:.0f} ms added at p50: {verdict} ({added:.2f} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    arguments = parser.parse_args()
    if arguments.runs < 2:
        parser.error("--runs must be at least 2 (for percentiles)")
    asyncio.run(main(arguments.runs, arguments.warmup))
