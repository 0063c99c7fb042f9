"""Metrics across the processes of `ajc serve --workers N` (prometheus-client's multiprocess
mode): a folder they all write their values to, and a supervisor that tells the library which
of them have gone.

The folder is new at every start, so no value of a previous run is counted again (the
library's rule: empty it between runs), and each `ajc serve` has its own, so two on one
machine do not add up each other's. A temporary folder rather than one under DATA_DIR: the
container's DATA_DIR is not writable, and the folder means nothing once the service stops.
"""

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator

from prometheus_client import multiprocess
from uvicorn.config import Config
from uvicorn.supervisors import Multiprocess

ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def metrics_folder() -> Iterator[str]:
    """A fresh folder, named in the environment the workers inherit (prometheus-client reads
    it when they import it), removed when the block ends."""
    folder = tempfile.mkdtemp(prefix="ajc-metrics-")
    previous = os.environ.get(ENVIRONMENT_VARIABLE)
    os.environ[ENVIRONMENT_VARIABLE] = folder
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(ENVIRONMENT_VARIABLE, None)
        else:
            os.environ[ENVIRONMENT_VARIABLE] = previous
        shutil.rmtree(folder, ignore_errors=True)


class Supervisor(Multiprocess):
    """uvicorn's supervisor, which also marks each worker that exits (died, replaced on HUP,
    retired on TTOU) as dead for prometheus-client: its gauges of the moment (runs active,
    pool connections) stop counting, while its counters and histograms stay in the sums."""

    def __init__(self, config: Config, sockets: list[socket.socket], folder: str) -> None:
        super().__init__(config, sockets)
        self.folder = folder

    def keep_subprocess_alive(self) -> None:
        with self._marking_exited():
            super().keep_subprocess_alive()

    def handle_signals(self) -> None:
        with self._marking_exited():
            super().handle_signals()

    @contextlib.contextmanager
    def _marking_exited(self) -> Iterator[None]:
        before = self._pids()
        yield
        for pid in before - self._pids():
            multiprocess.mark_process_dead(pid, self.folder)  # type: ignore[no-untyped-call]

    def _pids(self) -> set[int]:
        return {process.pid for process in self.processes if process.pid is not None}
