"""Master keys (ENCRYPTION_KEYS) and the AES-256-GCM they and the data keys encrypt with.

ENCRYPTION_KEYS is `id:key,id:key...`, each key 32 bytes in URL-safe base64 (`ajc
encryption-key` prints a new one). The first encrypts; every one listed decrypts, so rotating
is: put a new key first, keep the old ones, run `ajc rotate-keys`, then drop the old ones.
Development (no ENCRYPTION_KEYS, APP_ENV not production) uses a master key generated under
DATA_DIR on first start; production refuses to start without ENCRYPTION_KEYS
(app/core/settings.py).
"""

import base64
import binascii
import fcntl
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.core.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class KeyringError(Exception):
    """A master key is missing, malformed or wrong; the message says which, never the key."""


@dataclass(frozen=True)
class MasterKey:
    id: str
    cipher: AESGCM


def new_key_text(key_id: str) -> str:
    """An ENCRYPTION_KEYS entry with a fresh random key."""
    return f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def parse_master_keys(value: str) -> list[MasterKey]:
    keys: list[MasterKey] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        key_id, separator, encoded = entry.partition(":")
        if not separator or not KEY_ID.match(key_id):
            raise KeyringError(
                "ENCRYPTION_KEYS: each entry is `id:key` (id of letters, digits, `.`, `_`, `-`)"
            )
        try:
            material = base64.urlsafe_b64decode(encoded.encode())
        except (binascii.Error, ValueError) as exc:
            raise KeyringError(f"ENCRYPTION_KEYS: key {key_id!r} is not base64") from exc
        if len(material) != KEY_BYTES:
            raise KeyringError(f"ENCRYPTION_KEYS: key {key_id!r} is not {KEY_BYTES} bytes")
        if any(key.id == key_id for key in keys):
            raise KeyringError(f"ENCRYPTION_KEYS: key id {key_id!r} is listed twice")
        keys.append(MasterKey(key_id, AESGCM(material)))
    if not keys:
        raise KeyringError("ENCRYPTION_KEYS holds no key")
    return keys


def development_master_keys(data_dir: Path) -> str:
    """DATA_DIR/encryption-keys, created on first use under a file lock (processes started
    together on a new DATA_DIR must not each make a key of their own)."""
    path = data_dir / "encryption-keys"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".encryption-keys.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(new_key_text(f"dev-{secrets.token_hex(4)}") + "\n")
        return path.read_text().strip()


class Keyring:
    """Seals and opens with AES-256-GCM under the master keys; `seal` uses the first."""

    def __init__(self, master_keys: list[MasterKey]) -> None:
        self.master_keys = master_keys
        self._by_id = {key.id: key for key in master_keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> "Keyring":
        if settings.encryption_keys is not None:
            return cls(parse_master_keys(settings.encryption_keys.get_secret_value()))
        return cls(parse_master_keys(development_master_keys(settings.data_dir)))

    @property
    def current_id(self) -> str:
        return self.master_keys[0].id

    def wrap(self, material: bytes, associated_data: bytes) -> tuple[str, bytes]:
        """(master key id, nonce + ciphertext) of a data key."""
        key = self.master_keys[0]
        return key.id, seal_with(key.cipher, material, associated_data)

    def unwrap(self, master_key_id: str, wrapped: bytes, associated_data: bytes) -> bytes:
        key = self._by_id.get(master_key_id)
        if key is None:
            raise KeyringError(
                f"cannot decrypt: master key {master_key_id!r} is not configured in ENCRYPTION_KEYS"
            )
        try:
            return open_with(key.cipher, wrapped, associated_data)
        except InvalidTag as exc:
            raise KeyringError(
                f"cannot decrypt: a data key does not open with master key {master_key_id!r} "
                "(another key under the same id, or the row was altered)"
            ) from exc


def seal_with(cipher: AESGCM, plaintext: bytes, associated_data: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)  # random 96-bit nonces: fine far past 2^32 seals
    return nonce + cipher.encrypt(nonce, plaintext, associated_data)


def open_with(cipher: AESGCM, sealed: bytes, associated_data: bytes) -> bytes:
    """Raises InvalidTag when the ciphertext or its associated data is not what was sealed."""
    return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
