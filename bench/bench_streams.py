"""Concurrent streams: RUNS runs opened at once against the embedded default, each streaming
TOKENS tokens at RATE tokens/s from the model (ideal: TOKENS / RATE = 10 s), in one pass.

For each --max-concurrent value (runs admitted per API process, RUN_MAX_CONCURRENT), a fresh
pass: `ajc serve --workers WORKERS` with only DATA_DIR set (its parent starts and migrates the
embedded PostgreSQL and hands it to the workers), pointed at a model server of this file's
own (`model_app`: the OpenAI chunk format of tests/fake_openai.py, "t " per token on a fixed
schedule, uvicorn with uvloop and httptools in a process of its own). The load generator
(uvloop, one raw connection per run, httptools to parse the answer: far lighter than an HTTP
client library, so it does not decide the figures) opens the RUNS runs at once and records
for each its status (200 admitted; 503 problem+json with Retry-After refused), first byte,
first TEXT_MESSAGE_CONTENT, end, and the text it got (all TOKENS tokens, counted by content:
the service merges tokens into one event for a client that falls behind).

Prints runs admitted and refused (and how long a refusal took), errors (among admitted:
RUN_ERROR, no RUN_FINISHED, tokens missing, a cut stream, no end within --timeout; others: any
status but 200 and 503, a 503 without Retry-After or problem+json, connection failures), first
byte and first token p50/p99/max of the admitted runs, the stretch (p50/p99/max over the
ideal, from the request to the end and from the first token to the end), the peak memory of
the service (API processes and database apart: RSS summed, and PSS, which counts shared
pages once), the CPU each party used during the pass (and "others": the rest of the machine,
which a concurrent test run or benchmark fills; the pass then says its figures are
pessimistic), how late the model server sent its tokens and how late the load generator's
own loop ran (neither must be what the figures measure), the service's stderr if it wrote
any, and the goals: no error among admitted runs, none waiting over 1 s for its first byte.
Exits 1 when a goal is missed. --keep-logs DIR keeps the service's and the model's stderr.

No taskset: on the 2-core machine this was written on, the API processes, the database, the
model server and the load generator all need both cores at once; pinning the model server
and the load generator to one core (the service on both) changed nothing beyond the noise
between passes, so the kernel places them.

Default --max-concurrent 30 per worker, the service's default RUN_MAX_CONCURRENT (15 until
issue 14 halved the CPU a streamed token costs; what follows was measured at 15): on the
2-core machine this was written on, every admitted run got its first byte within 1 s in every
pass at 15 (max 0.41-0.92 s over eight passes), in most at 20 to 30 (4 of 5 at 20, 2 of 2 at
25, 1 of 2 at 30), in none at 50 (max 1.15-1.33 s); at 100 per worker streams stretch (1.24x)
and refusals wait seconds behind the streaming runs. What sets the limit: the first bytes of
the admitted runs wait for the burst's refusals (about 0.5 ms each, mostly uvicorn's own
work, since admission is a middleware ahead of routing: app/runs/admission.py) and for each
other's preparation.
The benchmark waits for every worker to listen before the burst: each has its own socket
(app/core/listeners.py), and a burst sent while one is still starting would all go to the
others.

    .venv/bin/python bench/bench_streams.py [--runs 500] [--workers 2] [--max-concurrent 15]
        [--tokens 200] [--rate 20] [--timeout 60]

`--max-concurrent 100 150 250` makes one pass per value.
"""

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httptools
import httpx
import uvloop

from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token

ROOT = Path(__file__).resolve().parent.parent
MODEL = "fake-model"
TOKEN = "t "
FIRST_BYTE_GOAL_SECONDS = 1.0
TICKS = os.sysconf("SC_CLK_TCK")

# --- The model server (runs in a process of its own: `uvicorn bench.bench_streams:model_app`)

MODEL_TOKENS = int(os.environ.get("BENCH_STREAMS_TOKENS", "200"))
MODEL_INTERVAL = 1 / float(os.environ.get("BENCH_STREAMS_RATE", "20"))


def _chunk(body: dict[str, Any]) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        **body,
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


TOKEN_CHUNK = _chunk(
    {"choices": [{"index": 0, "delta": {"content": TOKEN}, "finish_reason": None}]}
)
LAST_CHUNKS = (
    _chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + _chunk(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": MODEL_TOKENS,
                "total_tokens": 12 + MODEL_TOKENS,
            },
        }
    )
    + b"data: [DONE]\n\n"
)
lateness: list[float] = []  # seconds each token was sent after its time


async def model_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """POST /v1/chat/completions: MODEL_TOKENS tokens, token i at i * MODEL_INTERVAL after the
    request (a schedule, not sleeps in a row, so the model itself does not drift), the end at
    MODEL_TOKENS * MODEL_INTERVAL. GET /stats: how late the tokens went out, as JSON."""
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        late = sorted(lateness) or [0.0]
        stats = {
            "tokens": len(lateness),
            "p50": late[len(late) // 2],
            "p99": late[int(len(late) * 0.99)],
            "max": late[-1],
        }
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(stats).encode()})
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(MODEL_TOKENS):
        due = started + i * MODEL_INTERVAL
        if (delay := due - loop.time()) > 0:
            await asyncio.sleep(delay)
        lateness.append(loop.time() - due)
        await send({"type": "http.response.body", "body": TOKEN_CHUNK, "more_body": True})
    if (delay := started + MODEL_TOKENS * MODEL_INTERVAL - loop.time()) > 0:
        await asyncio.sleep(delay)
    await send({"type": "http.response.body", "body": LAST_CHUNKS})


# --- Processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_model_server(port: int, tokens: int, rate: float, log: Path) -> subprocess.Popen[bytes]:
    # `-m uvicorn` from the repository's root puts it on sys.path: `bench` is importable there.
    command = [sys.executable, "-m", "uvicorn", "bench.bench_streams:model_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"]
    command += ["--http", "httptools", "--lifespan", "off", "--backlog", "4096"]
    command += ["--log-level", "warning", "--no-access-log"]
    env = {**os.environ, "BENCH_STREAMS_TOKENS": str(tokens), "BENCH_STREAMS_RATE": str(rate)}
    with log.open("wb") as stderr:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )


def start_server(
    data_dir: Path, port: int, model_port: int, workers: int, max_concurrent: int, log: Path
) -> subprocess.Popen[bytes]:
    # The embedded default: no DATABASE_URL (nor anything else of the caller's about the
    # database or identity), so `ajc serve` starts, migrates and stops PostgreSQL itself.
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            ("DATABASE_", "EMBEDDED_", "CLERK_", "OPENAI_", "LLM_", "RUN_", "RATE_LIMIT")
        )
        and name not in {"APP_ENV", "API_WORKERS", "HOST"}
    }
    env = {
        **inherited,
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "RUN_WORKER_IN_PROCESS": "false",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
        "OPENAI_API_KEY": "bench-key",
        "LLM_MODEL": MODEL,
        "LLM_MAX_RETRIES": "0",  # a failing model shows as an error, not as a late token
        "RUN_MAX_CONCURRENT": str(max_concurrent),
        # One user opens every run: the per-user limit would refuse most of them (429).
        "RATE_LIMITS_ENABLED": "false",
    }
    command = [sys.executable, "-m", "app", "serve", "--workers", str(workers)]
    # cwd: the temporary folder, where no `.env` is read.
    with log.open("wb") as stderr:
        return subprocess.Popen(
            command, cwd=data_dir, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def postmaster(data_dir: Path) -> int | None:
    """The embedded PostgreSQL's postmaster, from its pid file."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    return None


def stop_database_left_running(data_dir: Path) -> None:
    """Should `ajc serve` have been killed before it stopped the database: its fast shutdown."""
    pid = postmaster(data_dir)
    if pid is None:
        return
    with contextlib.suppress(OSError):  # a stale pid file: not our PostgreSQL, leave it
        if str(data_dir).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)


def read_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def copy_logs(paths: list[Path], folder: Path, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.exists():
            shutil.copy(path, folder / f"{prefix}{path.name}")


async def wait_ready(
    client: httpx.AsyncClient, url: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"{url}: exited with {process.returncode}\n{read_log(log)}")
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(url)).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not become ready\n{read_log(log)}")


def listening_sockets(port: int) -> int:
    """How many sockets listen on the port (/proc/net/tcp, state 0A)."""
    return sum(
        int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A"
        for fields in map(str.split, Path("/proc/net/tcp").read_text().splitlines()[1:])
    )


async def wait_listening(port: int, workers: int) -> None:
    """Until every worker listens: each has a socket of its own (SO_REUSEPORT), and a burst
    sent while one is still starting would all go to the others."""
    for _ in range(600):
        if listening_sockets(port) >= workers:
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"fewer than {workers} processes listen on {port}")


# --- Memory and CPU of processes, from /proc


def parents() -> dict[int, int]:
    """Every process's parent."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                found[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return found


def tree(root: int, parent_of: dict[int, int]) -> set[int]:
    """`root` and its descendants."""
    members = {root}
    grew = True
    while grew:
        more = {pid for pid, parent in parent_of.items() if parent in members} - members
        members |= more
        grew = bool(more)
    return members


def process_groups(serve: int, data_dir: Path) -> dict[str, set[int]]:
    parent_of = parents()
    database = tree(pid, parent_of) if (pid := postmaster(data_dir)) else set()
    return {"API": tree(serve, parent_of) - database, "database": database}


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process, in KiB; zeros if it is gone."""
    rss = pss = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def cpu_ticks(pid: int) -> int:
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    return 0


def machine_busy_ticks() -> int:
    """CPU time the whole machine has spent busy (all cores), from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return user + nice + system + irq + softirq + steal


@dataclass
class Peak:
    processes: int = 0
    rss_kib: int = 0
    pss_kib: int = 0


class Sampler:
    """The peak memory of the service's process groups, sampled every `interval` seconds (in
    a thread: reading /proc takes some 20 ms, which the load generator's loop must not lose),
    the CPU time each group (and the model server) used between start() and stop(), and the
    load generator's own event-loop lag (were it late, the latencies it measures would be)."""

    def __init__(self, serve: int, model: int, data_dir: Path, interval: float = 0.5) -> None:
        self.serve, self.model, self.data_dir, self.interval = serve, model, data_dir, interval
        self.peaks: dict[str, Peak] = {"API": Peak(), "database": Peak()}
        self.cpu_seconds: dict[str, float] = {}
        self.api_cpu_seconds: list[float] = []  # each API process's, most first
        self.lags: list[float] = []  # seconds late, of 10 ms sleeps in the load generator
        self.worst_lag_at = 0.0  # seconds after start()
        self._ticks: dict[int, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _pids(self) -> dict[str, set[int]]:
        return {**process_groups(self.serve, self.data_dir), "model server": {self.model}}

    def sample(self) -> None:
        for name, pids in process_groups(self.serve, self.data_dir).items():
            sizes = [memory_kib(pid) for pid in pids]
            peak = self.peaks[name]
            peak.processes = max(peak.processes, len(pids))
            peak.rss_kib = max(peak.rss_kib, sum(rss for rss, _ in sizes))
            peak.pss_kib = max(peak.pss_kib, sum(pss for _, pss in sizes))

    async def _sample_memory(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval)

    async def _measure_lag(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lag = time.perf_counter() - before - 0.01
            if lag > max(self.lags, default=0.0):
                self.worst_lag_at = time.perf_counter() - self._started
            self.lags.append(lag)

    def start(self) -> None:
        self._ticks = {pid: cpu_ticks(pid) for pids in self._pids().values() for pid in pids}
        self._started = time.perf_counter()
        self._machine = machine_busy_ticks()
        self._self = resource.getrusage(resource.RUSAGE_SELF)
        self._tasks = [
            asyncio.create_task(self._sample_memory()),
            asyncio.create_task(self._measure_lag()),
        ]

    async def stop(self) -> float:
        """Seconds since start()."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.sample()
        elapsed = time.perf_counter() - self._started
        for name, pids in self._pids().items():
            each = [(cpu_ticks(pid) - self._ticks.get(pid, 0)) / TICKS for pid in pids]
            self.cpu_seconds[name] = sum(each)
            if name == "API":
                self.api_cpu_seconds = sorted(each, reverse=True)
        used = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_seconds["load generator"] = (
            used.ru_utime - self._self.ru_utime + used.ru_stime - self._self.ru_stime
        )
        # Whatever else ran on the machine meanwhile (another benchmark, tests) took from
        # the service: shown so that such a pass is not mistaken for a clean one.
        busy = (machine_busy_ticks() - self._machine) / TICKS
        self.cpu_seconds["others"] = max(0.0, busy - sum(self.cpu_seconds.values()))
        return elapsed


# --- The load generator: one connection per run, its answer parsed by httptools


@dataclass
class Run:
    started: float = 0.0
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)  # of an answer other than 200
    first_byte: float | None = None
    first_token: float | None = None
    ended: float | None = None
    text: list[str] = field(default_factory=list)
    finished: bool = False  # RUN_FINISHED seen
    error: str | None = None

    @property
    def admitted(self) -> bool:
        return self.status == 200

    @property
    def refused(self) -> bool:
        return self.status == 503 and self.error is None


class RunConnection(asyncio.Protocol):
    """Sends one run's request (Connection: close) and reads its SSE answer into `run`."""

    def __init__(self, run: Run, request: bytes, done: asyncio.Future[None]) -> None:
        self.run, self.request, self.done = run, request, done
        self.parser = httptools.HttpResponseParser(self)
        self.pending = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as they do.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.run.first_byte is None:
            self.run.first_byte = time.perf_counter()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.finish(f"unparsable answer: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish(f"connection lost before the end of the answer ({exc or 'closed'})")

    def finish(self, error: str | None = None) -> None:
        if self.done.done():
            return
        self.run.ended = time.perf_counter()
        if error and self.run.error is None:
            self.run.error = error
        self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.run.headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self.run.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.run.status != 200:
            self.run.body += body
            return
        self.pending += body
        *frames, self.pending = self.pending.split(b"\n\n")
        for frame in frames:
            for line in frame.split(b"\n"):
                if line.startswith(b"data: "):
                    self.on_event(json.loads(line[6:]))

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "TEXT_MESSAGE_CONTENT":
            if self.run.first_token is None:
                self.run.first_token = time.perf_counter()
            self.run.text.append(event["delta"])
        elif kind == "RUN_FINISHED":
            self.run.finished = True
        elif kind == "RUN_ERROR":
            self.run.error = f"RUN_ERROR: {event.get('message')}"

    def on_message_complete(self) -> None:
        self.finish()


def request_bytes(port: int, path: str, token: str) -> bytes:
    body = json.dumps(
        {
            "threadId": str(uuid.uuid4()),  # a new conversation per run
            "runId": str(uuid.uuid4()),
            "messages": [{"id": str(uuid.uuid4()), "role": "user", "content": "Stream, please"}],
            "state": {},
            "tools": [],
            "context": [],
            "forwardedProps": {},
        }
    ).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def open_run(port: int, request: bytes, run_seconds: float) -> Run:
    loop = asyncio.get_running_loop()
    run = Run(started=time.perf_counter())
    done: asyncio.Future[None] = loop.create_future()
    connection = RunConnection(run, request, done)
    try:
        await loop.create_connection(lambda: connection, "127.0.0.1", port)
        await asyncio.wait_for(asyncio.shield(done), run_seconds)
    except TimeoutError:
        connection.finish(f"no end after {run_seconds:.0f} s")
    except asyncio.CancelledError:  # Ctrl-C: close the connection, or `ajc serve` waits for it
        connection.finish("cancelled")
        raise
    except OSError as exc:
        run.ended = time.perf_counter()
        run.error = f"connection failed: {exc!r}"
    return run


def check(run: Run, tokens: int) -> None:
    """Sets `run.error` for what the answer lacks."""
    if run.error is not None:
        return
    if run.status == 503:
        if "retry-after" not in run.headers:
            run.error = "503 without Retry-After"
        elif not run.headers.get("content-type", "").startswith("application/problem+json"):
            run.error = f"503 as {run.headers.get('content-type')}, not problem+json"
    elif run.status != 200:
        run.error = f"{run.status}: {bytes(run.body[:200]).decode(errors='replace')}"
    elif not run.finished:
        run.error = "no RUN_FINISHED"
    elif (text := "".join(run.text)) != TOKEN * tokens:
        run.error = f"{text.count(TOKEN)} tokens of {tokens}"


# --- A pass


@dataclass
class Result:
    max_concurrent: int
    runs: list[Run]
    elapsed: float
    sampler: Sampler
    model_lateness: dict[str, float]
    service_log: str
    service_exited: int | None


async def one_pass(
    workers: int,
    max_concurrent: int,
    runs: int,
    tokens: int,
    rate: float,
    run_seconds: float,
    keep_logs: Path | None,
) -> Result:
    data_dir = Path(tempfile.mkdtemp(prefix="ajc-bench-"))
    model_log, service_log = data_dir / "model.log", data_dir / "service.log"
    try:
        with contextlib.ExitStack() as processes:
            processes.callback(stop_database_left_running, data_dir)
            model_port, port = free_port(), free_port()
            model_server = start_model_server(model_port, tokens, rate, model_log)
            processes.callback(stop, model_server)
            server = start_server(data_dir, port, model_port, workers, max_concurrent, service_log)
            processes.callback(stop, server)
            runs_done, elapsed, sampler, lateness = await drive(
                data_dir, port, model_port, server, model_server, workers, runs, tokens, run_seconds
            )
            exited = server.poll()
        # The service stopped: its log is complete.
        log = read_log(service_log)
        if keep_logs is not None:
            copy_logs([service_log, model_log], keep_logs, f"{max_concurrent}-")
        return Result(max_concurrent, runs_done, elapsed, sampler, lateness, log, exited)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def drive(
    data_dir: Path,
    port: int,
    model_port: int,
    server: subprocess.Popen[bytes],
    model_server: subprocess.Popen[bytes],
    workers: int,
    runs: int,
    tokens: int,
    run_seconds: float,
) -> tuple[list[Run], float, Sampler, dict[str, float]]:
    """Waits for both servers, creates the agent, opens the runs at once and reads them."""
    async with httpx.AsyncClient(timeout=30) as client:
        model_stats = f"http://127.0.0.1:{model_port}/stats"
        await wait_ready(client, model_stats, model_server, data_dir / "model.log")
        base = f"http://127.0.0.1:{port}"
        await wait_ready(client, f"{base}/readyz", server, data_dir / "service.log")
        await wait_listening(port, workers)
        token = sign_session_token(
            development_key_pair(data_dir).private_pem,
            issuer=DEVELOPMENT_ISSUER,
            user_id="user_bench",
            organization_id="org_bench",
            role="admin",
            lifetime_seconds=3600,
        )
        auth = {"Authorization": f"Bearer {token}"}
        created = await client.post(
            f"{base}/agents", json={"slug": "streams", "name": "Streams"}, headers=auth
        )
        if created.status_code != 201:
            raise SystemExit(f"POST /agents: {created.status_code} {created.text}")
        path = f"/agents/{created.json()['id']}/runs"
        # Warm-up: every API process has verified a token and used its pool.
        await asyncio.gather(*(client.get(f"{base}/me", headers=auth) for _ in range(40)))

        requests = [request_bytes(port, path, token) for _ in range(runs)]
        sampler = Sampler(server.pid, model_server.pid, data_dir)
        sampler.start()
        results = await asyncio.gather(
            *(open_run(port, request, run_seconds) for request in requests)
        )
        elapsed = await sampler.stop()
        for run in results:
            check(run, tokens)
        lateness: dict[str, float] = (await client.get(model_stats)).json()
    return list(results), elapsed, sampler, lateness


# --- The report


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99, max; nan without values."""
    if not values:
        return float("nan"), float("nan"), float("nan")
    if len(values) == 1:
        return values[0], values[0], values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98], max(values)


def milliseconds(values: list[float]) -> str:
    p50, p99, top = quantiles(values)
    return f"p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  max {top * 1000:7.1f} ms"


def report(result: Result, workers: int, tokens: int, rate: float) -> bool:
    """Prints the pass's figures; whether the goals were met."""
    ideal = tokens / rate
    runs = result.runs
    admitted = [run for run in runs if run.admitted]
    refused = [run for run in runs if run.refused]
    admitted_errors = [run for run in admitted if run.error]
    other_errors = [run for run in runs if not run.admitted and run.error]
    good = [run for run in admitted if not run.error]
    first_bytes = [run.first_byte - run.started for run in admitted if run.first_byte]
    first_tokens = [run.first_token - run.started for run in admitted if run.first_token]
    durations = [run.ended - run.started for run in good if run.ended]
    refusals = [run.ended - run.started for run in refused if run.ended]

    print(
        f"\n== ajc serve --workers {workers}, RUN_MAX_CONCURRENT={result.max_concurrent} per "
        f"worker (capacity {workers * result.max_concurrent}); {len(runs)} runs opened at once, "
        f"{tokens} tokens at {rate:g}/s each (ideal {ideal:g} s)"
    )
    print(
        f"runs:        {len(runs)} attempted, {len(admitted)} admitted, {len(refused)} refused "
        f"(503 problem+json, Retry-After), {len(other_errors)} failed otherwise"
    )
    if refusals:
        print(f"refusal:     {milliseconds(refusals)}")
    print(f"errors:      {len(admitted_errors)} among admitted, {len(other_errors)} others")
    for error, count in Counter(run.error for run in admitted_errors + other_errors).most_common(8):
        print(f"    {count:4} x {error}")
    print(f"first byte:  {milliseconds(first_bytes)}  (admitted)")
    print(f"first token: {milliseconds(first_tokens)}  (admitted)")
    streaming = [run.ended - run.first_token for run in good if run.ended and run.first_token]
    if streaming:
        p50, p99, top = quantiles(streaming)
        print(
            f"streaming:   p50 {p50:6.2f} s ({p50 / ideal:.3f}x)  p99 {p99:6.2f} s "
            f"({p99 / ideal:.3f}x)  max {top:6.2f} s ({top / ideal:.3f}x)  (first token to end)"
        )
    if durations:
        p50, p99, top = quantiles(durations)
        print(
            f"duration:    p50 {p50:6.2f} s ({p50 / ideal:.3f}x)  p99 {p99:6.2f} s "
            f"({p99 / ideal:.3f}x)  max {top:6.2f} s ({top / ideal:.3f}x)  (request to end)"
        )
    complete = sum(1 for run in admitted if "".join(run.text) == TOKEN * tokens)
    print(f"tokens:      {complete} of {len(admitted)} admitted runs got all {tokens}")
    for name, peak in result.sampler.peaks.items():
        print(
            f"memory peak: {name:8} {peak.rss_kib / 1024:7.1f} MiB RSS summed, "
            f"{peak.pss_kib / 1024:7.1f} MiB PSS ({peak.processes} processes)"
        )
    cpu = ", ".join(
        f"{name} {seconds / result.elapsed:.2f}"
        for name, seconds in result.sampler.cpu_seconds.items()
    )
    each = " + ".join(
        f"{seconds / result.elapsed:.2f}" for seconds in result.sampler.api_cpu_seconds
    )
    print(f"CPU (cores): {cpu}  over the {result.elapsed:.1f} s pass; API processes: {each}")
    if result.sampler.cpu_seconds["others"] / result.elapsed > 0.2:
        print("             (other processes were busy meanwhile: these figures are pessimistic)")
    late = result.model_lateness
    print(
        f"model:       {late['tokens']:.0f} tokens sent, late by p50 {late['p50'] * 1000:.1f} ms, "
        f"p99 {late['p99'] * 1000:.1f} ms, max {late['max'] * 1000:.1f} ms"
    )
    _, lag_p99, lag_max = quantiles(result.sampler.lags)
    print(
        f"load gen:    event loop late by p99 {lag_p99 * 1000:.1f} ms, max "
        f"{lag_max * 1000:.1f} ms ({result.sampler.worst_lag_at:.2f} s into the pass)"
    )
    if result.service_exited is not None:
        print(f"the service had exited (status {result.service_exited}) by the end of the pass")
    if result.service_log.strip():
        lines = result.service_log.strip().splitlines()
        print(f"service stderr ({len(lines)} lines), the last ones:")
        for line in lines[-15:]:
            print(f"    {line[:300]}")
    slow = [value for value in first_bytes if value > FIRST_BYTE_GOAL_SECONDS]
    met = bool(admitted) and not admitted_errors and not slow
    print(
        f"goals:       {'met' if met else 'NOT met'}: {len(admitted)} admitted, "
        f"{len(admitted_errors)} errors among them, {len(slow)} waited over "
        f"{FIRST_BYTE_GOAL_SECONDS:g} s for the first byte"
    )
    return met


@contextlib.contextmanager
def more_open_files() -> Iterator[None]:
    """A connection per run: lift the soft limit on open files to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def main(arguments: argparse.Namespace) -> bool:
    met = True
    for max_concurrent in arguments.max_concurrent:
        result = await one_pass(
            arguments.workers,
            max_concurrent,
            arguments.runs,
            arguments.tokens,
            arguments.rate,
            arguments.timeout,
            arguments.keep_logs,
        )
        met = report(result, arguments.workers, arguments.tokens, arguments.rate) and met
    return met


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500, help="runs opened at once")
    parser.add_argument("--workers", type=int, default=2, help="ajc serve --workers")
    parser.add_argument(
        "--max-concurrent",
        type=int,
        nargs="+",
        default=[30],
        help="RUN_MAX_CONCURRENT: runs admitted per worker (one pass per value)",
    )
    parser.add_argument("--tokens", type=int, default=200, help="tokens the model streams")
    parser.add_argument("--rate", type=float, default=20.0, help="tokens per second")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a run may take")
    parser.add_argument(
        "--keep-logs", type=Path, help="copy the service's and model's stderr to this folder"
    )
    with more_open_files():
        goals_met = uvloop.run(main(parser.parse_args()))
    sys.exit(0 if goals_met else 1)
