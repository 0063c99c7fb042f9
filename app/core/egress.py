"""The egress guard: the one way out for requests a tenant can aim (URL knowledge sources
today; tool servers, API sources and database connections as they land). No other module
opens such a connection; `tests/core/test_egress.py` scans `app/` to keep it so.

Why connect-time checks: checking a URL's host with getaddrinfo and then letting the HTTP
client resolve it again when it connects lets a DNS answer that changes in between (DNS
rebinding, a TTL of 0) aim the request at the service's own network. Here a host is resolved
once, every address of the answer is checked, and the socket is opened to the checked address
itself, never to the name.

How, with httpx: httpcore (under httpx) opens every TCP connection through a network backend
(`httpcore.AsyncNetworkBackend`, public API). `CheckedNetworkBackend.connect_tcp(host, port)`
resolves the host with the guard, checks the addresses and connects to the first checked one
that answers. httpcore then starts TLS on that socket with the origin's host name as
`server_hostname`, so SNI and certificate verification still use the name the URL gave (a
certificate for the name is required, whatever IP it was reached at). httpx 0.28 has no
parameter for the backend (encode/httpx#3749 proposes one), so `_CheckedTransport` builds the
ordinary `httpx.AsyncHTTPTransport` and replaces its connection pool with one using the
checked backend: every httpx behaviour (exception mapping, streaming) is kept, and a client
built on it cannot reach an address the guard refuses, whichever URL or redirect it follows.
Environment proxies are never used (`trust_env=False`): a proxy would do its own resolving.

What is refused: anything not globally routable (loopback, RFC 1918 private, link-local,
multicast, unspecified, reserved, shared CGNAT 100.64/10, benchmarking, documentation), the
same behind IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo), and the
cloud metadata addresses. EGRESS_ALLOW_PRIVATE_ADDRESSES (development: a source served on
localhost) lifts every refusal except the metadata addresses: those hand out the machine's
cloud credentials, no development setup needs them, and the setting left on in production must
not turn into credential theft.

`EgressGuard.fetch` is the bounded GET (redirects followed here, each hop checked again, a byte
cap, an overall deadline), `EgressGuard.post` the bounded POST (no redirect followed: a
model's test); `EgressGuard.client` is an httpx client for protocols that need more (MCP,
OpenAPI tools); `EgressGuard.resolve` gives checked addresses to a non-HTTP driver
(a database connection connects to `CheckedAddress.address`, keeps the host for TLS).
Errors are `EgressError` (unresolvable, unreachable, too slow: worth another try later) and
its `EgressRefused` and `ResponseTooLarge` (no retry changes those); callers turn them into
their own terms.
"""

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpcore2
import httpx
import httpx2

from app.core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the name stands for, as text, in the resolver's order.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_MAX_REDIRECTS = 5

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle (v1)...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.0.23",  # Tencent Cloud
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS over IPv6
        "fd20:ce::254",  # GCP over IPv6
    )
)
# Not global, though ipaddress (3.11) calls them so.
_NOT_GLOBAL = (
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("192.88.99.0/24"),  # 6to4 relay anycast
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressError(Exception):
    """An outbound request that gave no usable answer: unresolvable, unreachable, too slow."""


class EgressRefused(EgressError):
    """Aimed at an address, or with a scheme, that tenants may not reach."""


class ResponseTooLarge(EgressError):
    """The answer is larger than the caller's byte limit."""


@dataclass(frozen=True)
class CheckedAddress:
    host: str  # as asked: what TLS must verify
    port: int
    address: IPAddress  # what to connect to


@dataclass(frozen=True)
class FetchedResponse:
    url: str  # after redirects
    status_code: int
    headers: httpx.Headers
    content: bytes


async def system_resolver(host: str, port: int) -> list[str]:
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressError(f"{host} cannot be resolved.") from exc
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers))


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why a tenant may not reach this address, or None if it may."""
    carried = _carried_ipv4(address)
    if address in METADATA_ADDRESSES or carried in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    if carried is not None and not _is_public(carried):
        return "inside the network"
    # IPv4-mapped and NAT64 addresses end at the IPv4 they carry (ipaddress calls NAT64
    # reserved, which would refuse every site an IPv6-only network reaches through it).
    if isinstance(address, ipaddress.IPv6Address) and (
        address.ipv4_mapped is not None or address in _NAT64
    ):
        return None
    return None if _is_public(address) else "inside the network"


def _is_public(address: IPAddress) -> bool:
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not any(address in network for network in _NOT_GLOBAL)
    )


def _carried_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's; the server's is the relay
    return None


class EgressGuard:
    """Checks and makes outbound connections for tenants. `resolver` is replaceable so tests
    can play a DNS server; `network_backend` opens the TCP connections to checked addresses
    (httpcore's AnyIO backend)."""

    def __init__(
        self,
        *,
        allow_private_addresses: bool = False,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow_private_addresses = allow_private_addresses
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._network_backend = network_backend or httpcore.AnyIOBackend()

    @classmethod
    def from_settings(cls, settings: Settings) -> "EgressGuard":
        return cls(allow_private_addresses=settings.egress_allow_private_addresses)

    async def resolve(self, host: str, port: int) -> list[CheckedAddress]:
        """Every address `host` stands for, each checked; any refused address refuses the
        host (a name with one public and one private address is an attack, not a mistake)."""
        host = host.strip("[]")
        try:
            answers: Sequence[str] = [str(ipaddress.ip_address(host))]
        except ValueError:
            answers = await self._resolver(host, port)
        if not answers:
            raise EgressError(f"{host} cannot be resolved.")
        checked = []
        for answer in answers:
            address = ipaddress.ip_address(answer.split("%", 1)[0])
            reason = refusal(address, self.allow_private_addresses)
            if reason is not None:
                shown = host if host == str(address) else f"{host} ({address})"
                raise EgressRefused(f"{shown} is {reason}: refused.")
            checked.append(CheckedAddress(host, port, address))
        return checked

    def client(self, timeout: float) -> httpx.AsyncClient:
        """An httpx client whose every connection goes to a checked address. It follows no
        redirects by itself; `fetch` is the bounded way to read a URL."""
        return httpx.AsyncClient(
            transport=_CheckedTransport(
                CheckedNetworkBackend(self, self._network_backend), self._ssl_context
            ),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
        )

    def model_http_client(self, timeout: float, limits: httpx2.Limits) -> httpx2.AsyncClient:
        """An httpx2 client for the openai SDK (`http_client=`) whose every connection goes to
        a checked address: a model endpoint an organization registered."""
        return httpx2.AsyncClient(
            transport=_CheckedTransport2(
                CheckedNetworkBackend2(self, httpcore2.AnyIOBackend()), limits
            ),
            timeout=timeout,
            limits=limits,
            follow_redirects=False,
            trust_env=False,
        )

    async def fetch(
        self,
        url: str,
        *,
        max_bytes: int,
        deadline_seconds: float,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        headers: Mapping[str, str] | None = None,
    ) -> FetchedResponse:
        """GET `url`, following at most `max_redirects` redirects (each hop checked), reading
        at most `max_bytes` of body, all within `deadline_seconds`."""
        async with self._bounded(url, deadline_seconds) as client:
            return await _follow(client, url, max_bytes, max_redirects, headers)

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str],
        max_bytes: int,
        deadline_seconds: float,
    ) -> FetchedResponse:
        """POST `body` to `url` (no redirect followed: a POST is not replayed elsewhere),
        reading at most `max_bytes` of the answer, within `deadline_seconds`."""
        async with self._bounded(url, deadline_seconds) as client:
            target = httpx.URL(url)
            if target.scheme not in ("http", "https") or not target.host:
                raise EgressRefused(f"{target} is not an http(s) URL.")
            async with client.stream("POST", target, content=body, headers=headers) as answer:
                content = await _read_capped(answer, max_bytes)
                return FetchedResponse(url, answer.status_code, answer.headers, content)

    @contextlib.asynccontextmanager
    async def _bounded(self, url: str, deadline_seconds: float) -> AsyncIterator[httpx.AsyncClient]:
        """A checked client for one exchange within the deadline, its errors in our terms."""
        try:
            async with asyncio.timeout(deadline_seconds), self.client(deadline_seconds) as client:
                yield client
        except TimeoutError as exc:
            raise EgressError(f"{url} did not answer within {deadline_seconds:g} s.") from exc
        except httpx.InvalidURL as exc:
            raise EgressRefused(f"{url} is not a valid URL.") from exc
        except httpx.HTTPError as exc:
            raise EgressError(f"{url}: {str(exc) or type(exc).__name__}") from exc


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    max_bytes: int,
    max_redirects: int,
    headers: Mapping[str, str] | None,
) -> FetchedResponse:
    target = httpx.URL(url)
    first_origin = _origin(target)
    for _ in range(max_redirects + 1):
        if target.scheme not in ("http", "https") or not target.host:
            raise EgressRefused(f"{target} is not an http(s) URL.")
        # The caller's headers (credentials) go to the origin it named, not where it redirects.
        sent = headers if _origin(target) == first_origin else None
        async with client.stream("GET", target, headers=sent) as response:
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                target = target.join(location)
                continue
            return FetchedResponse(
                str(target),
                response.status_code,
                response.headers,
                await _read_capped(response, max_bytes),
            )
    raise EgressError(f"{url} redirects more than {max_redirects} times.")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    received = bytearray()
    if not (declared.isdigit() and int(declared) > max_bytes):
        async for piece in response.aiter_bytes():
            received += piece
            if len(received) > max_bytes:
                break
        else:
            return bytes(received)
    raise ResponseTooLarge(f"{response.url} is larger than {max_bytes} bytes.")


async def _connect_checked(
    guard: EgressGuard,
    connect: Callable[[str], Awaitable[Any]],
    host: str,
    port: int,
    timeout: float | None,  # noqa: ASYNC109 (the backends' interface, passed on)
    errors: tuple[type[Exception], type[Exception]],
) -> Any:
    """Resolve `host` once through the guard and `connect` to the first checked address that
    answers; `errors` are the library's (connect error, connect timeout)."""
    connect_timeout = errors[1]
    try:
        async with asyncio.timeout(timeout):
            addresses = await guard.resolve(host, port)
    except TimeoutError as exc:
        raise connect_timeout(f"{host} did not resolve in time.") from exc
    failure: Exception | None = None
    for checked in addresses:
        try:
            return await connect(str(checked.address))
        except errors as exc:
            failure = exc
    assert failure is not None  # resolve() answers at least one address
    raise failure


class CheckedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's way to open connections, through the guard: resolve once, check, connect to
    the checked address. TLS is started by httpcore on the returned stream with the host name."""

    def __init__(self, guard: EgressGuard, inner: httpcore.AsyncNetworkBackend) -> None:
        self._guard = guard
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream: httpcore.AsyncNetworkStream = await _connect_checked(
            self._guard,
            lambda address: self._inner.connect_tcp(
                address, port, timeout, local_address, socket_options
            ),
            host,
            port,
            timeout,
            (httpcore.ConnectError, httpcore.ConnectTimeout),
        )
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("Unix sockets are not reachable from outside requests.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class CheckedNetworkBackend2(httpcore2.AsyncNetworkBackend):
    """The same for httpcore2, under httpx2: the openai SDK's transport, for models whose
    endpoint an organization gave (app/llm/clients.py)."""

    def __init__(self, guard: EgressGuard, inner: httpcore2.AsyncNetworkBackend) -> None:
        self._guard = guard
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore2's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream: httpcore2.AsyncNetworkStream = await _connect_checked(
            self._guard,
            lambda address: self._inner.connect_tcp(
                address, port, timeout, local_address, socket_options
            ),
            host,
            port,
            timeout,
            (httpcore2.ConnectError, httpcore2.ConnectTimeout),
        )
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore2's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise EgressRefused("Unix sockets are not reachable from outside requests.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: CheckedNetworkBackend, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(trust_env=False)
        # See the module's docstring: httpx has no parameter for the network backend. Should
        # a new httpx keep its pool elsewhere, fail here rather than connect unchecked.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport no longer keeps its pool in _pool")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=10,
            max_keepalive_connections=5,
            network_backend=backend,
        )


class _CheckedTransport2(httpx2.AsyncHTTPTransport):
    def __init__(self, backend: CheckedNetworkBackend2, limits: httpx2.Limits) -> None:
        super().__init__(trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore2.AsyncConnectionPool):
            raise RuntimeError("httpx2.AsyncHTTPTransport no longer keeps its pool in _pool")
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
