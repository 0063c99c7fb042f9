"""Session tokens: both of Clerk's formats are accepted, every bad token is a 401 problem."""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest

from app.auth.clerk import JwksKeys, TokenVerifier
from app.auth.errors import InvalidToken
from tests import clerk
from tests.clerk import FakeClerk

USER = "user_2tokenTestUser"
ORG = "org_2tokenTestOrg"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("role", ["admin", "member"])
async def test_valid_token_of_either_format_names_user_organization_and_role(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, version: int, role: str
) -> None:
    token = fake_clerk.token(USER, ORG, role=role, version=version)
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["clerk_id"] == USER
    assert body["organization"]["clerk_id"] == ORG
    assert body["organization"]["role"] == role
    assert [org["clerk_id"] for org in body["organizations"]] == [ORG]


async def test_token_without_organization_has_none(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    response = await client.get("/me", headers=bearer(fake_clerk.token(USER)))
    assert response.status_code == 200
    assert response.json()["organization"] is None


async def test_session_cookie_is_accepted(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    client.cookies.set("__session", fake_clerk.token(USER, ORG))
    assert (await client.get("/me")).status_code == 200


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert_unauthorized(response)
    assert response.json()["type"] == "/problems/missing-token"


async def test_non_bearer_authorization_is_401(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.get("/me", headers={"Authorization": "Basic dXNlcjpwdw=="}))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"exp": int(time.time()) - 120}, id="expired"),
        pytest.param({"nbf": int(time.time()) + 120}, id="not-yet-valid"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-issuer"),
        pytest.param({"azp": "https://evil.example"}, id="wrong-azp"),
    ],
)
async def test_bad_claims_are_401(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, overrides: dict[str, Any]
) -> None:
    assert_unauthorized(
        await client.get("/me", headers=bearer(fake_clerk.token(USER, ORG, **overrides)))
    )


async def test_expiry_within_clock_skew_is_accepted(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    token = fake_clerk.token(USER, ORG, exp=int(time.time()) - 2)
    assert (await client.get("/me", headers=bearer(token))).status_code == 200


async def test_alg_none_is_401(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    token = jwt.encode(fake_clerk.claims(USER, ORG), "", algorithm="none")
    assert_unauthorized(await client.get("/me", headers=bearer(token)))


async def test_hs256_signed_with_the_public_key_is_401(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    """The classic key-confusion attack: HMAC with the RSA public key as the secret."""
    public_pem = fake_clerk.keys["key-1"].public_pem
    header: dict[str, object] = {"alg": "HS256", "kid": "key-1", "typ": "JWT"}

    def encode(part: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

    signing_input = f"{encode(header)}.{encode(fake_clerk.claims(USER, ORG))}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    assert_unauthorized(await client.get("/me", headers=bearer(token)))


async def test_tampered_payload_is_401(client: httpx.AsyncClient, fake_clerk: FakeClerk) -> None:
    header, _, signature = fake_clerk.token(USER, ORG, role="member").split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps(fake_clerk.claims(USER, ORG, role="admin")).encode()
    ).rstrip(b"=")
    assert_unauthorized(
        await client.get("/me", headers=bearer(f"{header}.{forged.decode()}.{signature}"))
    )


async def test_garbage_token_is_401(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.get("/me", headers=bearer("not.a.jwt")))


async def test_unknown_kid_is_401_until_the_jwks_rotates_then_works_without_restart(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    fake_clerk.rotate("key-2")
    token = fake_clerk.token(USER, ORG, kid="key-2")
    published = fake_clerk.keys.pop("key-2")
    assert_unauthorized(await client.get("/me", headers=bearer(token)))

    fake_clerk.keys["key-2"] = published  # Clerk publishes the new key
    assert (await client.get("/me", headers=bearer(token))).status_code == 200


async def test_the_jwks_is_not_fetched_per_request(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    for _ in range(3):
        response = await client.get("/me", headers=bearer(fake_clerk.token(USER, ORG)))
        assert response.status_code == 200
    assert fake_clerk.jwks_requests == 1


async def test_a_flood_of_unknown_kids_fetches_the_jwks_once_per_interval() -> None:
    fake_clerk = FakeClerk()
    async with httpx.AsyncClient(transport=fake_clerk.transport) as http:
        keys = JwksKeys(f"{clerk.ISSUER}/.well-known/jwks.json", http, refresh_interval=60)
        verifier = TokenVerifier(keys, clerk.ISSUER, [], leeway_seconds=5)
        for attempt in range(10):
            fake_clerk.rotate(f"bogus-{attempt}")
            token = fake_clerk.token(USER, ORG, kid=f"bogus-{attempt}")
            del fake_clerk.keys[f"bogus-{attempt}"]
            with pytest.raises(InvalidToken):
                await verifier.verify(token)
    assert fake_clerk.jwks_requests == 1
