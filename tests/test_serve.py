"""`ajc serve --workers N` as an operator runs it: one embedded database started and
migrated by the parent, N API processes sharing it, and Ctrl-C stopping all of them."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
from tests import prometheus
from tests.fake_openai import free_port


def workers_of(pid: int) -> list[int]:
    """The processes uvicorn spawned to serve."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and "spawn_main" in (entry / "cmdline").read_text():
                found.append(int(entry.name))
    return found


def environment_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if b"=" in entry)


def requests_to_me(base: str) -> float:
    """`GET /me` answered with 200, as /metrics counts them."""
    scraped = prometheus.parse(httpx.get(f"{base}/metrics").text)
    labels = {"method": "GET", "route": "/me", "status": "200"}
    return prometheus.value(scraped, "ajc_http_request_duration_seconds_count", **labels)


LISTEN, ESTABLISHED = "0A", "01"


def sockets_held(pid: int, port: int, state: str) -> set[str]:
    """The inodes of the process's TCP sockets on local `port` in `state` (/proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
            inodes.add(fields[9])
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held.add(target[8:-1])
    return held


def test_serve_with_two_workers_shares_one_database_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        "RUN_WORKER_IN_PROCESS": "false",
    }
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--workers", "2", "--port", str(port)], env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, "ajc serve exited"
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.2)
        workers = workers_of(server.pid)
        assert len(workers) == 2
        # Each worker accepts from a listener of its own (SO_REUSEPORT), opened once its app
        # has started: the first ready one answered /readyz, the other may still be starting.
        while not all(sockets_held(pid, port, LISTEN) for pid in workers):
            assert time.monotonic() < deadline, "a worker never listened"
            time.sleep(0.2)
        listeners = [sockets_held(pid, port, LISTEN) for pid in workers]
        assert [len(held) for held in listeners] == [1, 1]
        # A shared socket would let the first worker awake take a whole burst.
        assert listeners[0] != listeners[1]

        token = sign_session_token(
            development_key_pair(tmp_path).private_pem,
            issuer=DEVELOPMENT_ISSUER,
            user_id="user_workers",
            organization_id="org_workers",
            role="admin",
        )
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
            # New connections each time, spread over both processes by the kernel.
            answers = [client.get("/me", headers={"Connection": "close"}) for _ in range(20)]
        assert {answer.status_code for answer in answers} == {200}
        assert {answer.json()["organization"]["clerk_id"] for answer in answers} == {"org_workers"}
        # Whichever worker /metrics reaches counts both workers' requests: prometheus-client's
        # multiprocess mode, in a folder of this run's own.
        assert requests_to_me(base) == 20
        metrics_folder = Path(environment_of(workers[0])["PROMETHEUS_MULTIPROC_DIR"])
        assert environment_of(workers[1])["PROMETHEUS_MULTIPROC_DIR"] == str(metrics_folder)

        # A burst of connections is spread over both workers.
        burst = [socket.socket() for _ in range(40)]
        for connection in burst:
            connection.setblocking(False)
            connection.connect_ex(("127.0.0.1", port))
        try:
            time.sleep(1)
            held = [len(sockets_held(pid, port, ESTABLISHED)) for pid in workers]
        finally:
            for connection in burst:
                connection.close()
        assert sum(held) == 40
        assert min(held) >= 5, held

        # A worker that dies is replaced and marked dead: its gauges of the moment leave the
        # sums (their file goes), its counts stay in them.
        dead = workers[0]
        assert (metrics_folder / f"gauge_livesum_{dead}.db").exists()
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (metrics_folder / f"gauge_livesum_{dead}.db").exists() or len(
            set(workers_of(server.pid)) - {dead}
        ) < 2:
            assert time.monotonic() < deadline, "the dead worker was never replaced"
            time.sleep(0.2)
        workers = sorted({*workers, *workers_of(server.pid)})
        assert requests_to_me(base) == 20
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=60)

    assert code == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
    assert not metrics_folder.exists()


def test_serve_with_workers_refuses_a_port_already_taken(tmp_path: Path) -> None:
    """SO_REUSEPORT would let the workers bind beside whatever holds the port and share its
    connections; the parent checks the port first, before starting anything."""
    with socket.socket() as taken:  # as another `ajc serve --workers` would hold it
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "DATA_DIR": str(tmp_path), "LOG_LEVEL": "WARNING"}
        env.pop("DATABASE_URL", None)
        server = subprocess.run(
            [sys.executable, "-m", "app", "serve", "--workers", "2", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert server.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in server.stderr
    assert not (tmp_path / "postgres").exists()
