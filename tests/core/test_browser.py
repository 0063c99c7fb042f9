"""What browsers get: CORS for the front end's origins only (credentials allowed, the
headers the front end reads exposed, refusals included), and the security headers on every
response."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from tests.clerk import FakeClerk
from tests.conftest import DatabaseUnderTest, client_for, running_app

FRONT_END = "https://app.example.com"


@pytest.fixture
async def cors_client(
    test_database: DatabaseUnderTest, session: AsyncSession, fake_clerk: FakeClerk, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = test_database.settings(
        workspaces_dir=tmp_path, cors_allow_origins=f"{FRONT_END}, https://admin.example.com"
    )
    async with (
        running_app(settings, session, fake_clerk.transport) as app,
        client_for(app) as client,
    ):
        yield client


async def test_the_front_ends_origin_may_call_with_credentials(
    cors_client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    preflight = await cors_client.options(
        "/agents",
        headers={
            "Origin": FRONT_END,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == FRONT_END
    assert preflight.headers["access-control-allow-credentials"] == "true"
    answer = await cors_client.get(
        "/me", headers={"Origin": FRONT_END, **fake_clerk.headers("user_1", "org_1")}
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == FRONT_END
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert {"x-request-id", "retry-after"} <= {name.strip() for name in exposed.split(",")}


async def test_another_origin_gets_no_cors_headers(cors_client: httpx.AsyncClient) -> None:
    preflight = await cors_client.options(
        "/agents",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    answer = await cors_client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers


async def test_a_refusal_at_the_door_reaches_the_front_end(
    cors_client: httpx.AsyncClient,
) -> None:
    """A body refused by the limits, before any route: the browser's code can read why."""
    answer = await cors_client.post(
        "/agents",
        content=b"x",
        headers={"Origin": FRONT_END, "content-type": "text/plain"},
    )
    assert answer.status_code == 415
    assert answer.headers["access-control-allow-origin"] == FRONT_END


async def test_cors_is_off_when_no_origin_is_set(client: httpx.AsyncClient) -> None:
    answer = await client.get("/healthz", headers={"Origin": FRONT_END})
    assert "access-control-allow-origin" not in answer.headers


def test_a_wildcard_origin_is_refused(test_database: DatabaseUnderTest) -> None:
    with pytest.raises(ValidationError, match="cannot be `\\*`"):
        test_database.settings(cors_allow_origins="https://app.example.com,*")


async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    public = await client.get("/healthz")
    signed_in = await client.get("/me", headers=fake_clerk.headers("user_1", "org_1"))
    refused = await client.get("/me", headers={"Authorization": "Bearer nope"})
    for answer in (public, signed_in, refused):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert "cache-control" not in public.headers
    assert signed_in.headers["cache-control"] == "no-store"
    assert refused.headers["cache-control"] == "no-store"
    token = fake_clerk.token("user_1", "org_1", "admin")
    cookie = await client.get("/me", headers={"Cookie": f"__session={token}"})
    assert cookie.headers["cache-control"] == "no-store"
