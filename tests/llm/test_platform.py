"""The platform's models: the environment's model kept in step by `ajc migrate`, and the
operator's through `ajc models add` / `ajc models list`."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.cli import main as ajc
from app.core import migrations
from app.core.settings import get_settings
from tests.conftest import DatabaseUnderTest
from tests.secrets.test_vault import KEY_A


@pytest.fixture
def owner_url(
    test_database: DatabaseUnderTest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    with test_database.scratch_database("platform_models") as roles:
        url = test_database.url(roles.owner, roles.database)
        migrations.upgrade(url, roles.app)
        monkeypatch.setenv("DATABASE_URL", test_database.url(roles.app, roles.database))
        monkeypatch.setenv("DATABASE_OWNER_URL", url)
        monkeypatch.setenv("DATABASE_APP_ROLE", roles.app)
        monkeypatch.setenv("DATA_DIR", str(tmp_path))
        monkeypatch.setenv("ENCRYPTION_KEYS", KEY_A)
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_MODEL", "LLM_PRICES"):
            monkeypatch.delenv(name, raising=False)
        yield url.replace("postgresql+asyncpg://", "postgresql://")


def run_ajc(monkeypatch: pytest.MonkeyPatch, *argv: str, **environment: str) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        ajc(list(argv))
    finally:
        get_settings.cache_clear()


def rows(owner_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(owner_url) as conn:
        return conn.execute(query).fetchall()


ENVIRONMENT_MODEL = (
    "SELECT m.name, m.provider, m.endpoint, m.active, s.hint FROM models m "
    "LEFT JOIN secrets s ON s.id = m.api_key_secret_id WHERE m.from_environment"
)
PRICES = (
    "SELECT p.input_micro_usd, p.cached_input_micro_usd, p.output_micro_usd FROM model_prices p "
    "JOIN models m ON m.id = p.model_id WHERE m.from_environment ORDER BY p.effective_from"
)


def test_migrate_keeps_the_environments_model_in_step(
    owner_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = {
        "OPENAI_API_KEY": "sk-environment-key-1111",
        "OPENAI_BASE_URL": "http://vllm.internal:8000/v1/",
        "LLM_MODEL": "llama-3.1-8b",
        "LLM_PRICES": json.dumps({"llama-3.1-8b": {"input": 0.1, "output": 0.2}}),
    }
    run_ajc(monkeypatch, "migrate", **environment)
    assert rows(owner_url, ENVIRONMENT_MODEL) == [
        ("llama-3.1-8b", "openai-compatible", "http://vllm.internal:8000/v1", True, "1111")
    ]
    assert rows(owner_url, PRICES) == [(100_000, 100_000, 200_000)]

    run_ajc(monkeypatch, "migrate")  # unchanged: no new price, the same secret
    assert rows(owner_url, PRICES) == [(100_000, 100_000, 200_000)]
    assert len(rows(owner_url, "SELECT id FROM secrets")) == 1

    new_prices = json.dumps({"llama-3.1-8b": {"input": 0.1, "output": 0.3}})
    run_ajc(monkeypatch, "migrate", OPENAI_API_KEY="sk-environment-key-2222", LLM_PRICES=new_prices)
    assert rows(owner_url, ENVIRONMENT_MODEL)[0][4] == "2222"
    assert len(rows(owner_url, "SELECT id FROM secrets")) == 1  # the old key's secret went
    assert rows(owner_url, PRICES) == [(100_000, 100_000, 200_000), (100_000, 100_000, 300_000)]

    monkeypatch.delenv("LLM_MODEL")
    run_ajc(monkeypatch, "migrate")
    assert rows(owner_url, ENVIRONMENT_MODEL)[0][3] is False  # inactive, not deleted


def test_the_operator_adds_and_lists_platform_models(
    owner_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add = [
        "models",
        "add",
        "--name",
        "Embeddings large",
        "--provider",
        "openai",
        "--model",
        "text-embedding-3-large",
        "--capability",
        "embeddings",
        "--dimensions",
        "3072",
        "--api-key-env",
        "OPERATOR_KEY",
        "--input-usd",
        "0.13",
    ]
    run_ajc(monkeypatch, *add, OPERATOR_KEY="sk-operator-key-3333")
    run_ajc(monkeypatch, *add)  # again: the same model, its key and price unchanged
    found = rows(
        owner_url,
        "SELECT m.owner_organization_id, m.capabilities, m.embedding_dimensions, s.hint "
        "FROM models m JOIN secrets s ON s.id = m.api_key_secret_id",
    )
    assert found == [(None, ["embeddings"], 3072, "3333")]
    assert rows(owner_url, "SELECT input_micro_usd, output_micro_usd FROM model_prices") == [
        (130_000, 0)
    ]
    capsys.readouterr()
    run_ajc(monkeypatch, "models", "list")
    assert "Embeddings large  (openai; embeddings)" in capsys.readouterr().out

    with pytest.raises(SystemExit, match="embedding_dimensions"):
        run_ajc(
            monkeypatch,
            "models",
            "add",
            "--name",
            "x",
            "--provider",
            "openai",
            "--model",
            "m",
            "--capability",
            "embeddings",
        )
    with pytest.raises(SystemExit, match="MISSING_KEY is not set"):
        run_ajc(
            monkeypatch,
            "models",
            "add",
            "--name",
            "x",
            "--provider",
            "openai",
            "--model",
            "m",
            "--api-key-env",
            "MISSING_KEY",
        )
