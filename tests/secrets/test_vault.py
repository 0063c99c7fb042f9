"""Secrets sealed by envelope encryption: what opens, and what must not."""

import os
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import set_tenant
from app.core.settings import Settings
from app.secrets.errors import SecretUnavailable
from app.secrets.keyring import (
    Keyring,
    KeyringError,
    development_master_keys,
    new_key_text,
    parse_master_keys,
)
from app.secrets.models import DataKey, Secret
from app.secrets.service import Vault
from tests.factories import make_org, make_user

KEY_A = new_key_text("a")
KEY_B = new_key_text("b")
API_KEY = "sk-test-0123456789abcdef"


def vault(*entries: str) -> Vault:
    return Vault(Keyring(parse_master_keys(",".join(entries))))


async def tenant(session: AsyncSession) -> uuid.UUID:
    org, user = await make_org(session), await make_user(session)
    await set_tenant(session, org.id, user.id)
    return org.id


async def test_a_sealed_secret_opens_for_its_row_and_shows_only_its_last_four(
    session: AsyncSession,
) -> None:
    org = await tenant(session)
    secret = await vault(KEY_A).seal(session, org, "model:1:api_key", API_KEY)

    stored = (await session.execute(select(Secret).where(Secret.id == secret.id))).scalar_one()
    assert API_KEY.encode() not in stored.ciphertext
    assert stored.hint == "cdef"
    data_key = (
        await session.execute(select(DataKey).where(DataKey.id == stored.data_key_id))
    ).scalar_one()
    assert (data_key.owner_organization_id, data_key.master_key_id) == (org, "a")
    # A fresh vault (another process): the data key is unwrapped from its row.
    assert await vault(KEY_A).reveal(session, org, secret.id, "model:1:api_key") == API_KEY


async def test_an_organization_has_one_data_key_for_all_its_secrets(
    session: AsyncSession,
) -> None:
    org = await tenant(session)
    box = vault(KEY_A)
    first = await box.seal(session, org, "model:1:api_key", API_KEY)
    second = await box.seal(session, org, "model:2:api_key", "another-key-0000")
    assert first.data_key_id == second.data_key_id


async def test_a_short_secret_shows_no_hint(session: AsyncSession) -> None:
    org = await tenant(session)
    assert (await vault(KEY_A).seal(session, org, "model:1:api_key", "short")).hint == ""


async def test_a_secret_does_not_open_for_another_row(session: AsyncSession) -> None:
    org = await tenant(session)
    box = vault(KEY_A)
    secret = await box.seal(session, org, "model:1:api_key", API_KEY)
    with pytest.raises(SecretUnavailable, match="sealed for another row"):
        await box.reveal(session, org, secret.id, "model:2:api_key")


async def test_a_ciphertext_copied_to_another_secret_does_not_open(
    session: AsyncSession,
) -> None:
    org = await tenant(session)
    box = vault(KEY_A)
    original = await box.seal(session, org, "model:1:api_key", API_KEY)
    other = await box.seal(session, org, "model:1:api_key", "placeholder-key-1")
    await session.execute(
        update(Secret).where(Secret.id == other.id).values(ciphertext=original.ciphertext)
    )
    with pytest.raises(SecretUnavailable, match="cannot decrypt"):
        await box.reveal(session, org, other.id, "model:1:api_key")


async def test_another_organization_neither_sees_a_secret_nor_opens_its_ciphertext(
    session: AsyncSession,
) -> None:
    box = vault(KEY_A)
    first = await tenant(session)
    secret = await box.seal(session, first, "model:1:api_key", API_KEY)
    ciphertext = secret.ciphertext

    second = await tenant(session)
    with pytest.raises(SecretUnavailable, match="gone"):
        await box.reveal(session, second, secret.id, "model:1:api_key")
    with pytest.raises(SecretUnavailable, match="gone"):  # row-level security, not the filter
        await box.reveal(session, first, secret.id, "model:1:api_key")
    copied = await box.seal(session, second, "model:1:api_key", "placeholder-key-2")
    await session.execute(
        update(Secret).where(Secret.id == copied.id).values(ciphertext=ciphertext)
    )
    with pytest.raises(SecretUnavailable, match="cannot decrypt"):
        await box.reveal(session, second, copied.id, "model:1:api_key")


async def test_secrets_keep_opening_while_the_master_key_rotates(session: AsyncSession) -> None:
    org = await tenant(session)
    secret = await vault(KEY_A).seal(session, org, "model:1:api_key", API_KEY)

    # The new key first, the old one kept: old secrets open, new data keys use the new key.
    assert await vault(KEY_B, KEY_A).reveal(session, org, secret.id, "model:1:api_key") == API_KEY
    # The old key dropped before `ajc rotate-keys` ran: a clear error, not a garbled key.
    with pytest.raises(SecretUnavailable, match="master key 'a' is not configured"):
        await vault(KEY_B).reveal(session, org, secret.id, "model:1:api_key")
    # Another key under the same id does not open it either.
    with pytest.raises(SecretUnavailable, match="does not open with master key 'a'"):
        await vault(new_key_text("a")).reveal(session, org, secret.id, "model:1:api_key")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "holds no key"),
        ("no-separator", "each entry is `id:key`"),
        ("bad id:AAAA", "each entry is `id:key`"),
        ("a:not base64!", "not base64"),
        ("a:AAAA", "not 32 bytes"),
        (f"{KEY_A},{KEY_A}", "listed twice"),
    ],
)
def test_malformed_master_keys_are_refused_without_showing_them(value: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message) as raised:
        parse_master_keys(value)
    assert KEY_A.split(":")[1] not in str(raised.value)


def test_development_makes_one_master_key_under_data_dir(tmp_path: Path) -> None:
    first = development_master_keys(tmp_path)
    assert development_master_keys(tmp_path) == first
    assert parse_master_keys(first)[0].id.startswith("dev-")
    assert os.stat(tmp_path / "encryption-keys").st_mode & 0o777 == 0o600


def test_production_refuses_to_start_without_encryption_keys(settings: Settings) -> None:
    production = {
        **settings.model_dump(),
        "app_env": "production",
        "encryption_keys": None,
    }
    with pytest.raises(ValidationError, match="needs ENCRYPTION_KEYS"):
        Settings.model_validate(production)
    Settings.model_validate({**production, "encryption_keys": KEY_A})
