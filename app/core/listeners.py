"""Listening sockets for `ajc serve --workers N`: one per worker process, in a SO_REUSEPORT group.

uvicorn's supervisor binds one socket in the parent and every worker accepts from it. The
kernel wakes one waiting worker, which accepts everything queued, so a burst of connections
lands on one process while the others stay idle: `bench/bench_streams.py` measured 485 of 500
simultaneous runs reaching one of two workers, which refused them as full while the other had
room. With a socket of its own per worker, all bound with SO_REUSEPORT to the same address, the
kernel spreads new connections over the workers by a hash of their addresses.

Linux only (other systems accept SO_REUSEPORT but send every connection to one socket); the
container and the machines this runs on are Linux.
"""

import logging
import socket

logger = logging.getLogger(__name__)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_reuse_port(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) in the SO_REUSEPORT group; the server calls listen()."""
    listener = socket.socket(_family(host), socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.set_inheritable(True)
    return listener


def bind_worker_listeners(host: str, port: int) -> list[socket.socket]:
    return [bind_reuse_port(host, port)]


class WorkerListeners(list[socket.socket]):
    """The socket list given to uvicorn's supervisor (`Multiprocess`).

    Empty in the parent, which never accepts. The supervisor pickles its socket list into every
    worker it starts or restarts; this one unpickles as a new socket of the worker's own, so a
    replaced worker rejoins the group the same way.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host = host
        self.port = port
        # Fail in the parent, before anything starts, when the port is taken. The probe is a
        # plain socket: one with SO_REUSEPORT would bind beside another `ajc serve` of the same
        # user and silently share its connections.
        with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise SystemExit(f"ajc serve: cannot listen on {host}:{port}: {error}") from error
        logger.info("serving on %s:%d, one SO_REUSEPORT listener per worker", host, port)

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        return bind_worker_listeners, (self.host, self.port)
