"""`ajc serve --workers N` as an operator runs it: one embedded database started and
migrated by the parent, N API processes sharing it, and Ctrl-C stopping all of them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
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
        assert len(workers_of(server.pid)) == 2

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
        workers = workers_of(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=60)

    assert code == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
