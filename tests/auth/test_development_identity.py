"""Development identity: `ajc token` mints what the service accepts; production refuses it."""

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli import main as ajc
from app.core.settings import Settings
from tests.conftest import DatabaseUnderTest, client_for, running_app


@pytest.fixture
async def development_client(
    test_database: DatabaseUnderTest, tmp_path: Path, session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with no Clerk configured: development identity, keys under DATA_DIR."""
    settings = test_database.settings(
        data_dir=tmp_path, clerk_issuer=None, clerk_authorized_parties=None
    )
    async with running_app(settings, session, None) as app, client_for(app) as client:
        yield client


async def test_ajc_token_mints_a_token_the_service_accepts(
    development_client: httpx.AsyncClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    from app.core.settings import get_settings

    get_settings.cache_clear()
    try:
        ajc(["token", "--user", "user_dev", "--org", "org_dev", "--role", "admin"])
    finally:
        get_settings.cache_clear()
    token = capsys.readouterr().out.strip()
    response = await development_client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json()["organization"]["role"] == "admin"


def test_production_refuses_development_identity() -> None:
    with pytest.raises(ValidationError, match="CLERK_ISSUER"):
        Settings.model_validate(
            {"app_env": "production", "database_url": "postgresql://app@db/ajc"}
        )


def test_production_refuses_the_embedded_database() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings.model_validate({"app_env": "production", "clerk_issuer": "https://clerk.x"})


def test_production_with_clerk_configured_is_accepted() -> None:
    settings = Settings.model_validate(
        {
            "app_env": "production",
            "database_url": "postgresql://app@db/ajc",
            "clerk_issuer": "https://clerk.example.com",
            "clerk_webhook_signing_secret": "whsec_c2VjcmV0",
            "encryption_keys": "k1:" + "A" * 43 + "=",
        }
    )
    assert not settings.development_identity


def test_processes_started_together_on_a_new_data_dir_share_one_key_pair(
    tmp_path: Path,
) -> None:
    """Each creates the pair if there is none: four at once must all end with the same."""
    script = (
        "import sys, time; from pathlib import Path;"
        "from app.core.crypto import development_key_pair;"
        "start = float(sys.argv[2]);"
        "time.sleep(max(0.0, start - time.time()));"
        "sys.stdout.write(development_key_pair(Path(sys.argv[1])).public_pem.decode())"
    )
    start = time.time() + 1.5  # all four imported and waiting by then
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    keys = {process.communicate(timeout=60)[0] for process in processes}
    assert len(keys) == 1
    assert keys == {(tmp_path / "dev-keys" / "public.pem").read_text()}
