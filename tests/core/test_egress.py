"""The egress guard against a real HTTP(S) server on a loopback port: what it refuses, that it
connects to the address it checked (so a DNS answer that changes cannot aim it elsewhere),
redirects checked hop by hop, the byte cap, the overall deadline, and TLS still verifying the
host name. DNS and "the internet" are the only stand-ins: a resolver that answers what each
test says, and a network in which a few public addresses lead to the loopback server."""

import asyncio
import datetime
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpcore
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from app.core.egress import (
    EgressError,
    EgressGuard,
    EgressRefused,
    ResponseTooLarge,
    refusal,
)
from tests import fake_openai

PAGE = b"<html><body><h1>Benefits</h1></body></html>"
PUBLIC = "93.184.215.14"  # stands for an internet host; the test network routes it to loopback


@dataclass
class LocalServer:
    port: int
    hits: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)

    def paths(self) -> list[str]:
        return [path for path, _ in self.hits]


class FakeDNS:
    """Answers each name with the next of its answers (the last one repeats), like a DNS
    server whose records change between two lookups."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise EgressError(f"{host} cannot be resolved.")
        sequence = self.answers[host]
        return sequence.pop(0) if len(sequence) > 1 else sequence[0]


class FakeInternet(httpcore.AsyncNetworkBackend):
    """Records every address dialled; public addresses in `routes` lead to the loopback
    server, other public addresses are unreachable, loopback is reached for real."""

    def __init__(self, routes: dict[str, str] | None = None) -> None:
        self.routes = routes or {}
        self.dialled: list[str] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.dialled.append(host)
        if host in self.routes:
            host = self.routes[host]
        elif not ipaddress.ip_address(host).is_loopback:
            raise httpcore.ConnectError(f"{host} is unreachable from the tests")
        return await self._real.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no Unix sockets here")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def build_app(server: LocalServer) -> Starlette:
    async def record(request: Request) -> None:
        server.hits.append((request.url.path, request.headers.get("host", "")))

    async def page(request: Request) -> Response:
        await record(request)
        return Response(PAGE, media_type="text/html")

    async def redirect(request: Request) -> Response:
        await record(request)
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def loop(request: Request) -> Response:
        await record(request)
        return RedirectResponse("/loop", status_code=301)

    async def sized(request: Request) -> Response:
        await record(request)
        return Response(b"x" * int(request.path_params["size"]), media_type="text/plain")

    async def chunked(request: Request) -> Response:
        await record(request)
        size = int(request.path_params["size"])

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, size, 1000):
                yield b"x" * min(1000, size - start)

        return StreamingResponse(pieces(), media_type="text/plain")

    async def slow(request: Request) -> Response:
        await record(request)

        async def trickle() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"x"
                await asyncio.sleep(0.1)

        return StreamingResponse(trickle(), media_type="text/plain")

    return Starlette(
        routes=[
            Route("/page", page),
            Route("/redirect", redirect),
            Route("/loop", loop),
            Route("/bytes/{size:int}", sized),
            Route("/chunked/{size:int}", chunked),
            Route("/slow", slow),
        ]
    )


async def start(
    server: LocalServer, certificates: "Certificates | None" = None
) -> tuple[uvicorn.Server, "asyncio.Task[None]"]:
    config = uvicorn.Config(
        build_app(server),
        host="127.0.0.1",
        port=server.port,
        log_level="warning",
        ssl_certfile=certificates.cert_file if certificates else None,
        ssl_keyfile=certificates.key_file if certificates else None,
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    for _ in range(200):
        if running.started:
            return running, task
        await asyncio.sleep(0.05)
    raise RuntimeError("local server did not start")


@pytest.fixture(scope="module")
async def http_server() -> AsyncIterator[LocalServer]:
    server = LocalServer(fake_openai.free_port())
    running, task = await start(server)
    yield server
    running.should_exit = True
    await task


@pytest.fixture
def local(http_server: LocalServer) -> LocalServer:
    http_server.hits.clear()
    return http_server


async def fetch(guard: EgressGuard, url: str, max_bytes: int = 10_000) -> bytes:
    fetched = await guard.fetch(url, max_bytes=max_bytes, deadline_seconds=10)
    assert fetched.status_code == 200
    return fetched.content


# What is refused ---------------------------------------------------------------------------

INSIDE = [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "240.0.0.1", "198.18.0.1", "192.0.2.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::ffff:169.254.1.1", "::127.0.0.1", "64:ff9b::a00:1", "2002:7f00:1::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",
]  # fmt: skip
METADATA = [
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "169.254.170.2",
    "::ffff:169.254.169.254",
]  # fmt: skip
PUBLIC_ADDRESSES = ["1.1.1.1", "8.8.8.8", PUBLIC, "2606:4700::1111", "::ffff:1.1.1.1",
                    "64:ff9b::101:101"]  # fmt: skip


@pytest.mark.parametrize("address", INSIDE + METADATA)
def test_addresses_inside_the_network_and_metadata_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is not None


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize("address", INSIDE)
def test_allowing_private_addresses_allows_the_network(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=True) is None


@pytest.mark.parametrize("address", METADATA)
def test_metadata_addresses_stay_refused_when_private_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=True) == "a cloud metadata address"


async def test_a_loopback_url_is_refused_before_any_connection(local: LocalServer) -> None:
    network = FakeInternet()
    guard = EgressGuard(network_backend=network)
    for host in ("127.0.0.1", "[::ffff:127.0.0.1]"):
        with pytest.raises(EgressRefused, match="inside the network"):
            await fetch(guard, f"http://{host}:{local.port}/page")
    assert network.dialled == [] and local.hits == []


async def test_a_name_with_any_private_address_is_refused(local: LocalServer) -> None:
    dns = FakeDNS({"intranet.test": [["10.0.0.5"]], "mixed.test": [[PUBLIC, "192.168.0.7"]]})
    network = FakeInternet(routes={PUBLIC: "127.0.0.1"})
    guard = EgressGuard(resolver=dns, network_backend=network)
    with pytest.raises(EgressRefused, match=r"intranet.test \(10.0.0.5\) is inside the network"):
        await fetch(guard, f"http://intranet.test:{local.port}/page")
    with pytest.raises(EgressRefused, match=r"192\.168\.0\.7"):
        await fetch(guard, f"http://mixed.test:{local.port}/page")
    assert network.dialled == [] and local.hits == []


async def test_a_metadata_address_is_refused_even_when_private_addresses_are_allowed() -> None:
    network = FakeInternet()
    guard = EgressGuard(
        allow_private_addresses=True,
        resolver=FakeDNS({"metadata.google.internal": [["169.254.169.254"]]}),
        network_backend=network,
    )
    for url in ("http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/"):
        with pytest.raises(EgressRefused, match="cloud metadata"):
            await fetch(guard, url)
    assert network.dialled == []


async def test_other_schemes_are_refused() -> None:
    guard = EgressGuard(allow_private_addresses=True)
    for url in ("file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:6379/_INFO"):
        with pytest.raises(EgressRefused):
            await fetch(guard, url)


# Connecting to what was checked ------------------------------------------------------------


async def test_allowing_private_addresses_reaches_a_local_server(local: LocalServer) -> None:
    guard = EgressGuard(allow_private_addresses=True)
    assert await fetch(guard, f"http://127.0.0.1:{local.port}/page") == PAGE
    assert local.paths() == ["/page"]


async def test_the_connection_goes_to_the_resolved_address_with_the_name_as_host(
    local: LocalServer,
) -> None:
    # No real DNS knows service.test: reaching the server proves the socket went to the
    # guard's answer, and the server still sees the name the URL gave.
    dns = FakeDNS({"service.test": [["127.0.0.1"]]})
    guard = EgressGuard(allow_private_addresses=True, resolver=dns)
    assert await fetch(guard, f"http://service.test:{local.port}/page") == PAGE
    assert local.hits == [("/page", f"service.test:{local.port}")]
    assert dns.asked == ["service.test"]


async def test_dns_rebinding_cannot_aim_the_connection_at_loopback(local: LocalServer) -> None:
    # The attacker's DNS answers a public address first and 127.0.0.1 after: a check that
    # resolves, then a client that resolves again to connect, would reach 127.0.0.1.
    dns = FakeDNS({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    network = FakeInternet(routes={PUBLIC: "127.0.0.1"})
    guard = EgressGuard(resolver=dns, network_backend=network)

    assert await fetch(guard, f"http://rebind.test:{local.port}/page") == PAGE
    assert dns.asked == ["rebind.test"]  # one lookup for the check and the connection
    assert network.dialled == [PUBLIC]

    with pytest.raises(EgressRefused, match=r"rebind.test \(127.0.0.1\)"):
        await fetch(guard, f"http://rebind.test:{local.port}/page")
    assert network.dialled == [PUBLIC]  # never 127.0.0.1


async def test_an_unreachable_checked_address_is_not_replaced_by_another_lookup(
    local: LocalServer,
) -> None:
    dns = FakeDNS({"rebind.test": [["1.1.1.1"], ["127.0.0.1"]]})
    network = FakeInternet()  # 1.1.1.1 is unreachable here
    guard = EgressGuard(resolver=dns, network_backend=network)
    with pytest.raises(EgressError) as caught:
        await fetch(guard, f"http://rebind.test:{local.port}/page")
    assert not isinstance(caught.value, EgressRefused)
    assert network.dialled == ["1.1.1.1"] and local.hits == []


# Redirects, size, time ---------------------------------------------------------------------


@pytest.fixture
def public_guard() -> tuple[EgressGuard, FakeInternet]:
    """Private addresses refused; public.test is an internet host (routed to the server)."""
    dns = FakeDNS({"public.test": [[PUBLIC]], "internal.test": [["10.0.0.8"]]})
    network = FakeInternet(routes={PUBLIC: "127.0.0.1"})
    return EgressGuard(resolver=dns, network_backend=network), network


async def test_redirects_are_followed_and_each_hop_is_checked(
    local: LocalServer, public_guard: tuple[EgressGuard, FakeInternet]
) -> None:
    guard, network = public_guard
    origin = f"http://public.test:{local.port}"
    fetched = await guard.fetch(
        f"{origin}/redirect?to=/page", max_bytes=10_000, deadline_seconds=10
    )
    assert (fetched.status_code, fetched.content, fetched.url) == (200, PAGE, f"{origin}/page")

    for target in (f"http://127.0.0.1:{local.port}/page", f"http://internal.test:{local.port}/"):
        local.hits.clear()
        with pytest.raises(EgressRefused, match="inside the network"):
            await fetch(guard, f"{origin}/redirect?to={target}")
        assert local.paths() == ["/redirect"]
    assert set(network.dialled) == {PUBLIC}


async def test_endless_redirects_stop(
    local: LocalServer, public_guard: tuple[EgressGuard, FakeInternet]
) -> None:
    guard, _ = public_guard
    with pytest.raises(EgressError, match="redirects more than 5 times"):
        await fetch(guard, f"http://public.test:{local.port}/loop")
    assert local.paths() == ["/loop"] * 6


@pytest.mark.parametrize("kind", ["bytes", "chunked"])
async def test_a_body_over_the_byte_limit_is_refused(local: LocalServer, kind: str) -> None:
    guard = EgressGuard(allow_private_addresses=True)
    base = f"http://127.0.0.1:{local.port}/{kind}"
    assert len(await fetch(guard, f"{base}/5000", max_bytes=5000)) == 5000
    with pytest.raises(ResponseTooLarge, match="larger than 5000 bytes"):
        await fetch(guard, f"{base}/5001", max_bytes=5000)


async def test_the_deadline_covers_the_whole_fetch(local: LocalServer) -> None:
    # Each byte comes within any per-read timeout; only an overall deadline stops it.
    guard = EgressGuard(allow_private_addresses=True)
    started = time.monotonic()
    with pytest.raises(EgressError, match="did not answer within 1 s"):
        await guard.fetch(
            f"http://127.0.0.1:{local.port}/slow", max_bytes=10_000, deadline_seconds=1
        )
    assert time.monotonic() - started < 3


# TLS ----------------------------------------------------------------------------------------


@dataclass
class Certificates:
    ca_pem: bytes
    cert_file: Path
    key_file: Path


def make_certificates(directory: Path, name: str) -> Certificates:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        # The name only, no IP: reaching it at 127.0.0.1 verifies only if the name is checked.
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificates(ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certificates]:
    yield make_certificates(tmp_path_factory.mktemp("tls"), "service.test")


async def test_tls_verifies_the_host_name_not_the_address_connected_to(
    certificates: Certificates,
) -> None:
    server = LocalServer(fake_openai.free_port())
    running, task = await start(server, certificates)
    try:
        trusted = ssl.create_default_context(cadata=certificates.ca_pem.decode())
        dns = FakeDNS({"service.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
        guard = EgressGuard(allow_private_addresses=True, resolver=dns, ssl_context=trusted)

        assert await fetch(guard, f"https://service.test:{server.port}/page") == PAGE
        # Same address, another name: the certificate does not name it.
        with pytest.raises(EgressError, match=r"CERTIFICATE_VERIFY_FAILED|[Hh]ostname mismatch"):
            await fetch(guard, f"https://other.test:{server.port}/page")
        with pytest.raises(EgressError, match="CERTIFICATE_VERIFY_FAILED"):
            await fetch(EgressGuard(allow_private_addresses=True, resolver=dns),
                        f"https://service.test:{server.port}/page")  # fmt: skip
        assert server.paths() == ["/page"]
    finally:
        running.should_exit = True
        await task
