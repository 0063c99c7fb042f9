"""ASGI middleware: request ids, access logs, and the limits every request body must meet.

Pure ASGI rather than BaseHTTPMiddleware, so streamed responses (SSE) pass through untouched.
"""

import json
import logging
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_JSON, problem_body
from app.core.logging import request_id_var
from app.observability import metrics

logger = logging.getLogger("app.access")

REQUEST_ID_HEADER = "x-request-id"
# A client's id is echoed only if it is short and plain: it ends up in logs and headers.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# On every response: a browser never guesses a type (an uploaded file served back cannot run
# as a page), and no `Referer` leaves for other sites.
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
NO_STORE = (b"cache-control", b"no-store")


class RequestIdMiddleware:
    """The request id (the client's, if plain, or a new one) on the request's state, its log
    lines and its response, one access line and one latency observation (by route template)
    per request, and the security headers. One middleware for all of it: each layer costs
    every request (bench/bench_auth.py).

    An answer to a signed-in caller (Authorization header or session cookie) is
    `Cache-Control: no-store` unless the route said otherwise: a shared cache or the back
    button must not keep one user's data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        signed_in = "authorization" in request_headers or "__session=" in request_headers.get(
            "cookie", ""
        )
        client_id = request_headers.get(REQUEST_ID_HEADER)
        if client_id and _CLIENT_REQUEST_ID.match(client_id):
            request_id = client_id
        else:
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                if signed_in and not any(name == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            # The route's template (`/agents/{agent_id}`), which routing put in the scope:
            # never the path itself, whose ids would make a label value per object.
            route = scope.get("route")
            route_path = getattr(route, "path", None) or metrics.UNROUTED
            metrics.observe_request(scope["method"], route_path, status, duration)
            logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(duration * 1000, 1),
                },
            )


MULTIPART_OVERHEAD_BYTES = 64 * 1024

# Media types a body may have. Anything else is refused before a route reads it.
_ACCEPTED_BODY_TYPES = ("application/json", "multipart/form-data")


class BodyLimitsMiddleware:
    """Refuse bodies that are too large (413) or of a type no route reads (415), before any
    route or database work starts. The size is checked on the declared Content-Length and
    again while the body streams, so a chunked or lying client cannot get past it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # A multipart body is one file plus its form's few small fields; the route checks the
        # file's own size exactly.
        self.max_multipart_bytes = max_upload_bytes + MULTIPART_OVERHEAD_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        has_body = (declared not in (None, "0")) or "transfer-encoding" in headers
        if not has_body:
            await self.app(scope, receive, send)
            return
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if not _accepted(media_type):
            await refuse(
                scope,
                send,
                415,
                "unsupported-media-type",
                "Unsupported Media Type",
                f"Send the body as application/json, not {media_type or 'an untyped body'}.",
            )
            return
        limit = (
            self.max_multipart_bytes if media_type == "multipart/form-data" else self.max_body_bytes
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse_too_large(scope, send, limit)
            return

        received = 0
        response_started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now and tell the route the client went away, so it stops reading.
                    refused = True
                    if not response_started:
                        await _refuse_too_large(scope, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            if not refused:
                raise


def _accepted(media_type: str) -> bool:
    return media_type in _ACCEPTED_BODY_TYPES or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _refuse_too_large(scope: Scope, send: Send, limit: int) -> None:
    await refuse(
        scope,
        send,
        413,
        "payload-too-large",
        "Payload Too Large",
        f"The request body is larger than {limit} bytes.",
    )


async def refuse(
    scope: Scope,
    send: Send,
    status: int,
    problem: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer from a middleware itself: no route has run, so no handler can. The body was
    not read, so the connection closes after the answer."""
    request_id = scope.get("state", {}).get("request_id")
    body = json.dumps(
        problem_body(status, problem, title, detail, scope["path"], request_id)
    ).encode()
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
