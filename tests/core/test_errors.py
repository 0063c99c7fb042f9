"""Every error leaves as application/problem+json (RFC 9457) with the request id, never as a
stack trace."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from app.core.errors import Conflict, NotFound

PROBLEM = "application/problem+json"


class Payload(BaseModel):
    name: str
    count: int


class ThingNotFound(NotFound):
    problem = "thing-not-found"


@pytest.fixture
def routes(app: FastAPI) -> None:
    async def get_thing() -> None:
        raise ThingNotFound("No thing with that id.")

    async def create_thing(payload: Payload) -> Payload:
        return payload

    async def conflict() -> None:
        raise Conflict("Already there.", existing_id="42")

    async def crash() -> None:
        raise RuntimeError("secret internal detail")

    app.add_api_route("/_test/thing", get_thing, methods=["GET"])
    app.add_api_route("/_test/thing", create_thing, methods=["POST"])
    app.add_api_route("/_test/conflict", conflict, methods=["GET"])
    app.add_api_route("/_test/crash", crash, methods=["GET"])


def assert_problem(response: httpx.Response, status: int, problem: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == f"/problems/{problem}"
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/no-such-route"), 404, "not-found")
    assert body["instance"] == "/no-such-route"


@pytest.mark.usefixtures("routes")
async def test_domain_not_found_keeps_its_problem_type(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/_test/thing"), 404, "thing-not-found")
    assert body["detail"] == "No thing with that id."


@pytest.mark.usefixtures("routes")
async def test_domain_error_extensions_are_in_the_body(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/_test/conflict"), 409, "conflict")
    assert body["existing_id"] == "42"


@pytest.mark.usefixtures("routes")
async def test_schema_mismatch_is_a_422_problem_listing_the_fields(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/_test/thing", json={"name": "x", "count": "many"})
    body = assert_problem(response, 422, "validation-error")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert [error["loc"] for error in errors] == [["body", "count"]]


@pytest.mark.usefixtures("routes")
async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_test/thing", content=b'{"name": "x", ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed-json")


@pytest.mark.usefixtures("routes")
async def test_wrong_content_type_is_a_415_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_test/thing", content=b"name=x", headers={"content-type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.usefixtures("routes")
async def test_oversized_body_is_a_413_problem(client: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"x" * 2_000_000 + b'", "count": 1}'
    response = await client.post(
        "/_test/thing", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")


@pytest.mark.usefixtures("routes")
async def test_oversized_chunked_body_without_length_is_a_413_problem(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65_536
        yield b'", "count": 1}'

    response = await client.post(
        "/_test/thing", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")


@pytest.mark.usefixtures("routes")
async def test_unhandled_exception_is_a_500_problem_without_internals(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/_test/crash")
    body = assert_problem(response, 500, "internal-error")
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"]


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/healthz"), 405, "method-not-allowed")


async def test_request_id_is_echoed_when_sent(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "req-123.abc"})
    assert response.headers["x-request-id"] == "req-123.abc"


async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32
