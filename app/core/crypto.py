"""Development identity: an RSA key pair generated on first start, and tokens shaped like
Clerk's session tokens signed with it.

Only used when no Clerk issuer is configured and APP_ENV is not production (the settings refuse
that combination). The private key never leaves DATA_DIR; nothing here is committed.
"""

import fcntl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEVELOPMENT_ISSUER = "https://ajc.development.invalid"
DEVELOPMENT_KEY_ID = "ajc-development"


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes


def generate_key_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(
        private_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        public_pem=key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def development_key_pair(data_dir: Path) -> KeyPair:
    """The development key pair under DATA_DIR/dev-keys, created on first use. Under a file
    lock: processes started together on a new DATA_DIR (`ajc serve` beside `ajc token`, two
    machines played on one) each made a pair of their own, and one then refused the other's
    tokens."""
    folder = data_dir / "dev-keys"
    private_path, public_path = folder / "private.pem", folder / "public.pem"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not private_path.exists():
            pair = generate_key_pair()
            public_path.write_bytes(pair.public_pem)
            private_path.touch(mode=0o600)
            private_path.write_bytes(pair.private_pem)
        return KeyPair(private_pem=private_path.read_bytes(), public_pem=public_path.read_bytes())


def sign_session_token(
    private_pem: bytes,
    *,
    issuer: str,
    user_id: str,
    organization_id: str | None = None,
    role: str | None = None,
    slug: str | None = None,
    lifetime_seconds: int = 3600,
    key_id: str = DEVELOPMENT_KEY_ID,
    extra: dict[str, Any] | None = None,
) -> str:
    """A v2 Clerk session token (`"v": 2`, organization in the compact `o` claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": user_id,
        "sid": f"sess_{uuid.uuid4().hex[:24]}",
        "iat": now,
        "nbf": now - 5,
        "exp": now + lifetime_seconds,
        "v": 2,
    }
    if organization_id:
        claims["o"] = {"id": organization_id, "rol": role or "member", "slg": slug or ""}
    claims.update(extra or {})
    return jwt.encode(claims, private_pem, algorithm="RS256", headers={"kid": key_id})
