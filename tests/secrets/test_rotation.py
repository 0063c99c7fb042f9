"""`ajc rotate-keys`: every data key ends under the current master key, and with
`--reencrypt` every secret under a new data key, values unchanged."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.cli import main as ajc
from app.core import migrations
from app.core.settings import get_settings
from app.secrets.keyring import parse_master_keys
from app.secrets.models import DataKey, Secret
from app.secrets.service import Vault
from tests.conftest import DatabaseUnderTest
from tests.factories import make_org
from tests.secrets.test_vault import KEY_A, KEY_B, vault


@pytest.fixture
def owner_url(
    test_database: DatabaseUnderTest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    with test_database.scratch_database("rotation") as roles:
        url = test_database.url(roles.owner, roles.database)
        migrations.upgrade(url, roles.app)
        monkeypatch.setenv("DATABASE_URL", test_database.url(roles.app, roles.database))
        monkeypatch.setenv("DATABASE_OWNER_URL", url)
        monkeypatch.setenv("DATA_DIR", str(tmp_path))
        get_settings.cache_clear()
        try:
            yield url
        finally:
            get_settings.cache_clear()


async def rotate(monkeypatch: pytest.MonkeyPatch, keys: str, *options: str) -> None:
    """The command as an operator runs it (its own event loop: in a thread)."""
    monkeypatch.setenv("ENCRYPTION_KEYS", keys)
    get_settings.cache_clear()
    await asyncio.to_thread(ajc, ["rotate-keys", *options])


async def test_rotation_rewraps_then_reencrypts_every_secret(
    owner_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_async_engine(owner_url)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    owners: list[uuid.UUID | None] = [None]
    sealed: dict[uuid.UUID, tuple[uuid.UUID | None, str, str]] = {}
    async with sessionmaker() as session, session.begin():
        owners += [(await make_org(session)).id, (await make_org(session)).id]
        for owner in owners:
            for number in range(3):
                value, purpose = f"key-{owner}-{number}", f"model:{number}:api_key"
                secret = await vault(KEY_A).seal(session, owner, purpose, value)
                sealed[secret.id] = (owner, purpose, value)

    async def state(box: Vault) -> tuple[set[str], set[uuid.UUID], bool]:
        async with sessionmaker() as session:
            keys = (await session.execute(select(DataKey))).scalars().all()
            revealed = [
                await box.reveal(session, owner, secret_id, purpose) == value
                for secret_id, (owner, purpose, value) in sealed.items()
            ]
            return {key.master_key_id for key in keys}, {key.id for key in keys}, all(revealed)

    try:
        _, before, _ = await state(vault(KEY_A))
        assert len(before) == 3  # one per owner: the platform and two organizations

        await rotate(monkeypatch, f"{KEY_B},{KEY_A}")
        assert "3 data keys rewrapped under master key 'b'" in capsys.readouterr().out
        masters, rewrapped, opened = await state(vault(KEY_B))  # the old key no longer needed
        assert (masters, rewrapped, opened) == ({"b"}, before, True)

        await rotate(monkeypatch, KEY_B, "--reencrypt", "--batch-size", "2")
        assert "9 secrets re-encrypted under new data keys" in capsys.readouterr().out
        masters, renewed, opened = await state(vault(KEY_B))
        assert masters == {"b"} and opened
        assert len(renewed) == 3 and not renewed & before  # the old data keys are gone
        async with sessionmaker() as session:
            in_use = set((await session.execute(select(Secret.data_key_id))).scalars())
        assert in_use == renewed

        await rotate(monkeypatch, KEY_B)  # nothing left to do
        assert "0 data keys rewrapped" in capsys.readouterr().out
    finally:
        await engine.dispose()


def test_encryption_key_prints_an_entry_that_encryption_keys_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ajc(["encryption-key", "--id", "2026-12"])
    entry = capsys.readouterr().out.strip()
    assert [key.id for key in parse_master_keys(entry)] == ["2026-12"]
