"""Tracing end to end: `ajc serve` with OTEL_EXPORTER_OTLP_ENDPOINT aimed at a collector
stand-in that this test runs, which receives OTLP over HTTP (protobuf) as a real collector
does. The service runs in a process of its own: OpenTelemetry's tracer provider and its
instrumentations are global to a process, and the test process must stay untraced."""

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair, sign_session_token
from app.main import create_app
from app.observability.tracing import SpanAttributesMiddleware
from tests.conftest import DatabaseUnderTest
from tests.fake_openai import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class Collector:
    """An OTLP/HTTP receiver on a loopback port: every span exported to `/v1/traces`."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests: list[tuple[str, str]] = []  # (path, content type)
        self._lock = threading.Lock()
        collector = self

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.receive(self.path, self.headers["Content-Type"], body)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def receive(self, path: str, content_type: str, body: bytes) -> None:
        export = ExportTraceServiceRequest.FromString(body)
        spans = [
            ReceivedSpan(
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                name=span.name,
                kind=span.kind,
                attributes={item.key: _value(item.value) for item in span.attributes},
            )
            for resource_spans in export.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.requests.append((path, content_type))
            self.spans += spans

    def received(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


def _ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> Iterator[ReceivedSpan]:
    by_id = {other.span_id: other for other in spans if other.trace_id == span.trace_id}
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        yield span


def _url(span: ReceivedSpan) -> Any:
    """A client span's URL, by the stable semantic conventions' name or the older one (the
    aiohttp instrumentation's default)."""
    return span.attributes.get("url.full") or span.attributes.get("http.url")


def request_span_of(spans: list[ReceivedSpan], request_id: str) -> ReceivedSpan:
    return next(
        span
        for span in spans
        if span.kind == Span.SPAN_KIND_SERVER
        and span.attributes.get("ajc.request_id") == request_id
    )


def wait_for(collector: Collector, found: Any, what: str, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = found(collector.received())
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"no {what} among {[s.name for s in collector.received()]}")


@pytest.fixture
def model_server() -> Iterator[str]:
    """tests/fake_openai.py in a process of its own (the test is not async); its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "tests.fake_openai:app", "--port", str(port)]
    server = subprocess.Popen([*command, "--log-level", "warning"], cwd=ROOT)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the fake model never listened"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/v1"
    server.terminate()
    server.wait(timeout=30)


def test_a_request_is_traced_with_its_request_id_organization_and_sql(
    test_database: DatabaseUnderTest, collector: Collector, model_server: str, tmp_path: Path
) -> None:
    port = free_port()
    key = development_key_pair(tmp_path)
    token = sign_session_token(
        key.private_pem,
        issuer=DEVELOPMENT_ISSUER,
        user_id="user_traced",
        organization_id="org_traced",
        role="admin",
    )
    with test_database.scratch_database("tracing") as roles:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_"))},
            "DATA_DIR": str(tmp_path),
            "DATABASE_URL": test_database.url(roles.app, roles.database),
            "DATABASE_APP_ROLE": roles.app,
            "LOG_LEVEL": "WARNING",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between the exporter's batches
            # The in-process worker checks for stalled jobs every second: a job to trace.
            "WORKER_STALLED_SECONDS": "3",
            "OPENAI_BASE_URL": model_server,
            "OPENAI_API_KEY": "test-key",
            "LLM_MODEL": "fake-model",
        }
        # `ajc migrate` as a deployment runs it: the schema, then the environment's model.
        owner = {**env, "DATABASE_OWNER_URL": test_database.url(roles.owner, roles.database)}
        subprocess.run([sys.executable, "-m", "app", "migrate"], env=owner, cwd=ROOT, check=True)
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)], env=env, cwd=ROOT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, "ajc serve exited"
                try:
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "never ready"
                time.sleep(0.2)
            me = httpx.get(
                f"{base}/me",
                headers={"Authorization": f"Bearer {token}", "X-Request-ID": "traced-request-1"},
            )
            assert me.status_code == 200, me.text

            def request_span(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
                return next(
                    (
                        span
                        for span in spans
                        if span.kind == Span.SPAN_KIND_SERVER
                        and span.attributes.get("ajc.request_id") == "traced-request-1"
                    ),
                    None,
                )

            server_span = wait_for(collector, request_span, "server span of GET /me")
            auth = {"Authorization": f"Bearer {token}"}
            agent = httpx.post(f"{base}/agents", json={"slug": "t", "name": "T"}, headers=auth)
            answer = httpx.post(
                f"{base}/agents/{agent.json()['id']}/runs",
                json={
                    "threadId": str(uuid.uuid4()),
                    "runId": "traced-run",
                    "messages": [{"id": "m1", "role": "user", "content": "Hi"}],
                    "state": {},
                    "tools": [],
                    "context": [],
                    "forwardedProps": {},
                },
                headers={**auth, "X-Request-ID": "traced-run-1"},
            )
            assert "RUN_FINISHED" in answer.text, answer.text
            model_span = wait_for(
                collector,
                lambda spans: next(
                    (
                        s
                        for s in spans
                        if s.kind == Span.SPAN_KIND_CLIENT and "/chat/completions" in str(_url(s))
                    ),
                    None,
                ),
                "client span of the model's request",
            )
            job_span = wait_for(
                collector,
                lambda spans: next(
                    (s for s in spans if s.name == "job jobs:retry_stalled_jobs"), None
                ),
                "job span",
            )
        finally:
            server.terminate()
            server.wait(timeout=30)

    assert server_span.name == "GET /me"
    assert server_span.attributes["http.route"] == "/me"
    assert server_span.attributes["http.response.status_code"] == 200
    assert server_span.attributes["ajc.organization_id"] == me.json()["organization"]["id"]
    spans = collector.received()
    statements = [
        span
        for span in spans
        if span.trace_id == server_span.trace_id
        and span.attributes.get("db.system") == "postgresql"
    ]
    assert statements, [span.name for span in spans if span.trace_id == server_span.trace_id]
    assert all(server_span in _ancestors(statement, spans) for statement in statements)
    # The model's request (over aiohttp, under the SDK's client) belongs to the run's request.
    run_span = request_span_of(spans, "traced-run-1")
    assert model_span.name == "POST"
    assert run_span in _ancestors(model_span, spans)
    assert job_span.kind == Span.SPAN_KIND_CONSUMER
    assert job_span.attributes["procrastinate.task"] == "jobs:retry_stalled_jobs"
    assert {path for path, _ in collector.requests} == {"/v1/traces"}
    assert {content_type for _, content_type in collector.requests} == {"application/x-protobuf"}
    # Probes are not traced.
    assert not any(span.attributes.get("http.route") == "/readyz" for span in spans)


def test_without_an_endpoint_tracing_loads_nothing_and_adds_no_middleware(
    test_database: DatabaseUnderTest,
) -> None:
    app = create_app(test_database.settings())
    added = [getattr(middleware.cls, "__name__", "") for middleware in app.user_middleware]
    assert SpanAttributesMiddleware.__name__ not in added
    assert "RequestIdMiddleware" in added

    # A fresh interpreter: this one has loaded OpenTelemetry's protobuf classes for the test
    # above.
    code = (
        "import sys\n"
        "from app.core.settings import Settings\n"
        "from app.main import create_app\n"
        "create_app(Settings.model_validate({'app_env': 'test'}))\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk',"
        " 'opentelemetry.instrumentation', 'opentelemetry.exporter'))]\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True)
