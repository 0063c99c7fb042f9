"""A stand-in for Clerk and Svix, speaking their wire formats: RS256 session tokens (v1 and
v2 claims) signed by keys published as a JWKS over HTTP, and webhooks signed by the `svix`
library exactly as Svix signs Clerk's deliveries."""

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from svix.webhooks import Webhook

from app.core.crypto import KeyPair, generate_key_pair

ISSUER = "https://clerk.test.example"
AUTHORIZED_PARTY = "https://app.test.example"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test-secret-for-svix-signatures!").decode()
FIXTURES = Path(__file__).parent / "webhooks" / "fixtures"


class FakeClerk:
    def __init__(self) -> None:
        self.keys: dict[str, KeyPair] = {"key-1": generate_key_pair()}
        self.jwks_requests = 0
        self.transport = httpx.MockTransport(self._handle)

    def rotate(self, kid: str) -> None:
        self.keys[kid] = generate_key_pair()

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/.well-known/jwks.json":
            return httpx.Response(404)
        self.jwks_requests += 1
        keys = []
        for kid, pair in self.keys.items():
            public_key = jwt.algorithms.RSAAlgorithm.from_jwk(
                jwt.algorithms.RSAAlgorithm.to_jwk(
                    jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).prepare_key(
                        pair.public_pem
                    )
                )
            )
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return httpx.Response(200, json={"keys": keys})

    def claims(
        self,
        user: str,
        org: str | None = None,
        role: str = "admin",
        version: int = 2,
        **overrides: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": user,
            "azp": AUTHORIZED_PARTY,
            "sid": f"sess_{uuid.uuid4().hex[:20]}",
            "iat": now,
            "nbf": now - 10,
            "exp": now + 60,
        }
        if version == 2:
            claims["v"] = 2
            if org:
                claims["o"] = {"id": org, "rol": role, "slg": "acme"}
        elif org:
            claims.update(org_id=org, org_role=f"org:{role}", org_slug="acme")
        claims.update(overrides)
        return claims

    def token(
        self,
        user: str,
        org: str | None = None,
        role: str = "admin",
        version: int = 2,
        kid: str = "key-1",
        **overrides: Any,
    ) -> str:
        claims = self.claims(user, org, role, version, **overrides)
        return jwt.encode(claims, self.keys[kid].private_pem, "RS256", headers={"kid": kid})

    def headers(self, user: str, org: str | None = None, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, org, role)}"}


def signed_webhook(
    payload: dict[str, Any],
    svix_id: str | None = None,
    secret: str = WEBHOOK_SECRET,
    sent_at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload)
    svix_id = svix_id or f"msg_{uuid.uuid4().hex}"
    sent_at = sent_at or datetime.now(UTC)
    signature = Webhook(secret).sign(svix_id, sent_at, body)
    headers = {
        "svix-id": svix_id,
        "svix-timestamp": str(int(sent_at.timestamp())),
        "svix-signature": signature,
        "content-type": "application/json",
    }
    return body.encode(), headers


def fixture(event_type: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{event_type}.json").read_text())
    return payload
