"""Every outbound connection a tenant can aim goes through `app/core/egress.py`: no other
module in `app/` makes an HTTP client, a socket connection or a database connection, except
the few listed here, whose targets only the operator sets (the model endpoints, Clerk's keys,
the product's own database). A new client elsewhere fails this test; put it behind the guard
or, if the operator alone chooses its target, add it here with the reason."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUARD = "app/core/egress.py"

# Importing any of these is already a way out.
FORBIDDEN_MODULES = (
    "aiohttp", "requests", "urllib3", "urllib.request", "http.client", "httpcore",
    "websockets", "pycurl", "ftplib", "smtplib", "telnetlib", "xmlrpc.client", "asyncssh",
    "paramiko", "grpc",
)  # fmt: skip
FORBIDDEN_CALLS = (
    "httpx.AsyncClient", "httpx.Client", "httpx.AsyncHTTPTransport", "httpx.HTTPTransport",
    "httpx.request", "httpx.stream", "httpx.get", "httpx.post", "httpx.put", "httpx.patch",
    "httpx.delete", "httpx.head", "httpx.options",
    "openai.AsyncOpenAI", "openai.OpenAI", "openai.AsyncAzureOpenAI", "openai.AzureOpenAI",
    "socket.socket", "socket.create_connection", "asyncio.open_connection", "anyio.connect_tcp",
    "asyncpg.connect", "asyncpg.create_pool", "psycopg.connect", "psycopg.AsyncConnection",
    "psycopg_pool", "sqlalchemy.create_engine", "sqlalchemy.ext.asyncio.create_async_engine",
    "procrastinate.PsycopgConnector",
)  # fmt: skip
# Methods that connect whatever they are called on (an event loop's, a socket's).
FORBIDDEN_METHODS = ("create_connection", "open_connection", "sock_connect", "connect_tcp")

ALLOWED = {
    ("app/main.py", "httpx.AsyncClient"): "Clerk's JWKS, at CLERK_ISSUER / CLERK_JWKS_URL",
    ("app/llm/clients.py", "openai.AsyncOpenAI"): (
        "the registry's chat models: the platform's at the operator's endpoints, an "
        "organization's over the egress guard's client (EgressGuard.model_http_client)"
    ),
    ("app/llm/clients.py", "openai.AsyncAzureOpenAI"): "the same, for Azure OpenAI deployments",
    ("app/knowledge/embedders.py", "openai.AsyncOpenAI"): "embeddings at EMBEDDINGS_BASE_URL",
    ("app/core/db.py", "sqlalchemy.ext.asyncio.create_async_engine"): "the product's database",
    ("app/core/db.py", "asyncpg.create_pool"): "the product's database (hot reads)",
    ("app/core/embedded.py", "psycopg.connect"): "the embedded PostgreSQL's Unix socket",
    ("app/runs/cancellation.py", "asyncpg.connect"): "the product's database (LISTEN)",
    ("app/jobs/queue.py", "procrastinate.PsycopgConnector"): "the product's database (jobs)",
    ("app/core/listeners.py", "socket.socket"): "`ajc serve`'s listening sockets",
}


def outbound_uses(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) for each way out in a module's source, names resolved through its
    imports (`from httpx import AsyncClient as C; C()` is `httpx.AsyncClient`)."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                # `import a.b` binds `a`; `import a.b as c` binds `c` to `a.b`.
                if name.asname:
                    aliases[name.asname] = name.name
                else:
                    aliases[name.name.split(".")[0]] = name.name.split(".")[0]
                if _matches(name.name, FORBIDDEN_MODULES):
                    yield node.lineno, name.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for name in node.names:
                aliases[name.asname or name.name] = f"{node.module}.{name.name}"
                if _matches(node.module, FORBIDDEN_MODULES) or _matches(
                    f"{node.module}.{name.name}", FORBIDDEN_MODULES
                ):
                    yield node.lineno, f"{node.module}.{name.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in FORBIDDEN_METHODS:
            yield node.lineno, f".{node.func.attr}()"
        # The callee, and what is handed to a call as a factory (`partial(httpx.Client)`).
        for reference in [node.func, *node.args, *(keyword.value for keyword in node.keywords)]:
            dotted = _dotted(reference, aliases)
            if dotted is not None and _matches(dotted, FORBIDDEN_CALLS):
                yield node.lineno, dotted


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


def scan_app() -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative == GUARD:
            continue
        for line, what in outbound_uses(path.read_text()):
            found.setdefault((relative, what), []).append(line)
    return found


def test_no_module_but_the_egress_guard_opens_outbound_connections() -> None:
    found = scan_app()
    unguarded = [
        f"{path}:{lines[0]}: {what}"
        for (path, what), lines in found.items()
        if (path, what) not in ALLOWED
    ]
    assert unguarded == [], "outbound connections outside app/core/egress.py:\n" + "\n".join(
        unguarded
    )


def test_every_allowed_exception_is_still_there() -> None:
    stale = sorted(set(ALLOWED) - set(scan_app()))
    assert stale == [], f"remove these from ALLOWED, the code no longer has them: {stale}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import httpx\nhttpx.AsyncClient()", "httpx.AsyncClient"),
        ("import httpx as h\nasync with h.AsyncClient() as c: pass", "httpx.AsyncClient"),
        ("from httpx import AsyncClient as C\nC(timeout=3)", "httpx.AsyncClient"),
        ("import httpx\nhttpx.get('http://x')", "httpx.get"),
        ("import httpx, functools\nfunctools.partial(httpx.Client, timeout=1)", "httpx.Client"),
        ("import httpx\nhttpx.AsyncHTTPTransport(retries=1)", "httpx.AsyncHTTPTransport"),
        ("import urllib.request\nurllib.request.urlopen('http://x')", "urllib.request"),
        ("from urllib import request", "urllib.request"),
        ("from urllib.request import urlopen", "urllib.request.urlopen"),
        ("import aiohttp", "aiohttp"),
        ("import socket\nsocket.create_connection(('x', 80))", "socket.create_connection"),
        ("from socket import create_connection as c\nc(('x', 80))", "socket.create_connection"),
        ("import asyncio\nasyncio.open_connection('x', 80)", "asyncio.open_connection"),
        ("loop.create_connection(factory, 'x', 80)", ".create_connection()"),
        ("import asyncpg\nasyncpg.connect(dsn)", "asyncpg.connect"),
        ("import openai\nopenai.AsyncOpenAI(base_url=url)", "openai.AsyncOpenAI"),
    ],
)  # fmt: skip
def test_the_scan_sees_each_way_out(source: str, expected: str) -> None:
    assert expected in [what for _, what in outbound_uses(source)]


def test_the_scan_ignores_what_does_not_connect() -> None:
    source = (
        "import httpx\nfrom urllib.parse import urlsplit\n"
        "def verify(client: httpx.AsyncClient) -> httpx.Response: ...\n"
        "urlsplit('http://x')\nhttpx.URL('http://x')\nisinstance(x, httpx.HTTPError)\n"
    )
    assert list(outbound_uses(source)) == []
