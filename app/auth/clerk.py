"""Verification of Clerk session tokens (RS256 JWTs).

Keys come from Clerk's JWKS (fetched with httpx, cached, refreshed when a token names an
unknown `kid`, at most once per refresh interval so a flood of bogus `kid`s cannot hammer
Clerk) or from a PEM public key (no network). Verified tokens are cached until they expire:
a session token is sent with every request of a page, and verifying RS256 each time is the
largest cost of an authenticated request.
"""

import asyncio
import time
from collections import OrderedDict
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization

from app.auth.errors import InvalidToken
from app.core.crypto import DEVELOPMENT_ISSUER, development_key_pair
from app.core.settings import Settings

ALGORITHM = "RS256"
JWKS_PATH = "/.well-known/jwks.json"
VERIFIED_CACHE_SIZE = 10_000


class KeySource(Protocol):
    async def key_for(self, kid: str | None) -> Any: ...


class StaticKey:
    """One PEM public key (CLERK_JWT_KEY, or the development key): any `kid` maps to it."""

    def __init__(self, public_pem: str | bytes) -> None:
        pem = public_pem.encode() if isinstance(public_pem, str) else public_pem
        self._key = serialization.load_pem_public_key(pem)

    async def key_for(self, kid: str | None) -> Any:
        return self._key


class JwksKeys:
    def __init__(self, url: str, client: httpx.AsyncClient, refresh_interval: float) -> None:
        self.url = url
        self.client = client
        self.refresh_interval = refresh_interval
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> Any:
        if kid is None:
            raise InvalidToken("The token names no key (`kid`).")
        key = self._keys.get(kid)
        if key is None:
            await self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("The token is signed by an unknown key.")
        return key

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._fetched_at is not None and now - self._fetched_at < self.refresh_interval:
                return
            self._fetched_at = now
            try:
                response = await self.client.get(self.url, timeout=5.0)
                response.raise_for_status()
                keys = response.json()["keys"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise InvalidToken("The signing keys could not be fetched.") from exc
            self._keys = {
                jwk["kid"]: jwt.PyJWK(jwk, algorithm=ALGORITHM).key
                for jwk in keys
                if jwk.get("kty") == "RSA" and "kid" in jwk
            }


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        issuer: str,
        authorized_parties: list[str],
        leeway_seconds: int,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.authorized_parties = authorized_parties
        self.leeway_seconds = leeway_seconds
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def verify(self, token: str) -> dict[str, Any]:
        cached = self._verified.get(token)
        if cached is not None and cached["exp"] + self.leeway_seconds > time.time():
            self._verified.move_to_end(token)
            return cached
        claims = await self._verify_signature_and_claims(token)
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    async def _verify_signature_and_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("The token is not a JWT.") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"Only {ALGORITHM} tokens are accepted.")
        key = await self.keys.key_for(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("The token has expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("The token is not valid yet.") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("The token was issued by someone else.") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("The token could not be verified.") from exc
        azp = claims.get("azp")
        # Clerk's rule: `azp` is checked when both it and the allowed parties are present.
        if self.authorized_parties and azp is not None and azp not in self.authorized_parties:
            raise InvalidToken("The token was issued for another origin (`azp`).")
        return claims


def create_token_verifier(settings: Settings, http_client: httpx.AsyncClient) -> TokenVerifier:
    """Clerk's JWKS, Clerk's PEM key, or (development only) the generated key pair."""
    keys: KeySource
    if settings.clerk_jwt_key:
        keys = StaticKey(settings.clerk_jwt_key)
    elif settings.clerk_issuer:
        url = settings.clerk_jwks_url or settings.clerk_issuer.rstrip("/") + JWKS_PATH
        keys = JwksKeys(url, http_client, settings.clerk_jwks_refresh_interval_seconds)
    else:
        keys = StaticKey(development_key_pair(settings.data_dir).public_pem)
    return TokenVerifier(
        keys,
        issuer=settings.clerk_issuer or DEVELOPMENT_ISSUER,
        authorized_parties=settings.authorized_parties,
        leeway_seconds=settings.clerk_clock_skew_seconds,
    )
