"""Sealing and opening secrets (app/secrets/models.py has the scheme).

What each ciphertext is bound to, through AES-GCM's associated data:
- a data key: its owner and its own id (`ajc/data-key/<owner>/<id>`);
- a secret: its owner, its own id and its purpose, which names the row that uses it
  (`ajc/secret/<owner>/<id>/model:<model id>:api_key`).
So a ciphertext moved to another row, purpose or organization fails to open, and a caller
must say which row it opens a secret for. A secret's value is never returned by the API,
logged or put in an error: only `hint` (its last four characters) is shown.
"""

import secrets as random
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession

from app.secrets import repository
from app.secrets.errors import SecretUnavailable
from app.secrets.keyring import KEY_BYTES, Keyring, KeyringError, open_with, seal_with
from app.secrets.models import DataKey, Secret

HINT_CHARACTERS = 4
HINT_MIN_LENGTH = 12  # shorter values show no hint: four characters would be a third of one


def hint(value: str) -> str:
    return value[-HINT_CHARACTERS:] if len(value) >= HINT_MIN_LENGTH else ""


def _owner_text(owner: uuid.UUID | None) -> str:
    return str(owner) if owner else "platform"


def data_key_context(owner: uuid.UUID | None, data_key_id: uuid.UUID) -> bytes:
    return f"ajc/data-key/{_owner_text(owner)}/{data_key_id}".encode()


def secret_context(owner: uuid.UUID | None, secret_id: uuid.UUID, purpose: str) -> bytes:
    return f"ajc/secret/{_owner_text(owner)}/{secret_id}/{purpose}".encode()


class DataKeyCache:
    """Unwrapped data keys by id, for the process: a data key's material never changes
    (rotation rewraps it, or makes a new key with a new id)."""

    def __init__(self) -> None:
        self._ciphers: dict[uuid.UUID, AESGCM] = {}

    def cipher(self, keyring: Keyring, data_key: DataKey) -> AESGCM:
        cipher = self._ciphers.get(data_key.id)
        if cipher is None:
            material = keyring.unwrap(
                data_key.master_key_id,
                data_key.wrapped,
                data_key_context(data_key.owner_organization_id, data_key.id),
            )
            cipher = self._ciphers[data_key.id] = AESGCM(material)
        return cipher


class Vault:
    """The keyring and the process's unwrapped data keys: what every secret goes through."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._data_keys = DataKeyCache()

    async def _current_data_key(self, session: AsyncSession, owner: uuid.UUID | None) -> DataKey:
        data_key = await repository.current_data_key(session, owner)
        if data_key is None:
            new = DataKey(id=uuid.uuid4(), owner_organization_id=owner)
            new.master_key_id, new.wrapped = self.keyring.wrap(
                random.token_bytes(KEY_BYTES), data_key_context(owner, new.id)
            )
            await repository.insert_current_data_key(session, new)
            data_key = await repository.current_data_key(session, owner)
            assert data_key is not None  # ours, or the one a concurrent transaction made
        return data_key

    async def seal(
        self, session: AsyncSession, owner: uuid.UUID | None, purpose: str, value: str
    ) -> Secret:
        data_key = await self._current_data_key(session, owner)
        secret = Secret(
            id=uuid.uuid4(), owner_organization_id=owner, purpose=purpose, hint=hint(value)
        )
        secret.data_key_id = data_key.id
        secret.ciphertext = seal_with(
            self._cipher(data_key), value.encode(), secret_context(owner, secret.id, purpose)
        )
        session.add(secret)
        await session.flush()
        return secret

    async def reseal(self, session: AsyncSession, secret: Secret, value: str) -> None:
        """A new value for the same secret (the same row and purpose), under the current
        data key."""
        data_key = await self._current_data_key(session, secret.owner_organization_id)
        secret.data_key_id = data_key.id
        secret.ciphertext = seal_with(
            self._cipher(data_key),
            value.encode(),
            secret_context(secret.owner_organization_id, secret.id, secret.purpose),
        )
        secret.hint = hint(value)
        await session.flush()

    async def reveal(
        self,
        session: AsyncSession,
        owner: uuid.UUID | None,
        secret_id: uuid.UUID,
        purpose: str,
    ) -> str:
        """The value, for the row `purpose` names. SecretUnavailable says why it cannot be
        opened, naming the purpose and never the ciphertext."""
        secret = await repository.get_secret(session, owner, secret_id)
        if secret is None:
            raise SecretUnavailable(f"The secret for {purpose} is gone.")
        data_key = await repository.get_data_key(session, owner, secret.data_key_id)
        if data_key is None:
            raise SecretUnavailable(f"The data key of the secret for {purpose} is gone.")
        try:
            value = open_with(
                self._cipher(data_key), secret.ciphertext, secret_context(owner, secret.id, purpose)
            )
        except InvalidTag as exc:
            raise SecretUnavailable(
                f"The secret for {purpose}: cannot decrypt: it was sealed for another row, "
                "purpose or organization, or altered."
            ) from exc
        return value.decode()

    def _cipher(self, data_key: DataKey) -> AESGCM:
        try:
            return self._data_keys.cipher(self.keyring, data_key)
        except KeyringError as exc:
            owner = _owner_text(data_key.owner_organization_id)
            raise SecretUnavailable(f"The secrets of {owner}: {exc}.") from exc

    async def delete(
        self, session: AsyncSession, owner: uuid.UUID | None, secret_id: uuid.UUID
    ) -> None:
        await repository.delete_secret(session, owner, secret_id)
