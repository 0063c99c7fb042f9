"""Alembic, driven from code: `ajc migrate`, the embedded start-up, /readyz and the tests."""

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from alembic import command

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(owner_url: str | None = None, app_role: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["owner_url"] = owner_url
    config.attributes["app_role"] = app_role
    return config


def upgrade(owner_url: str, app_role: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(owner_url, app_role), revision)


def downgrade(owner_url: str, app_role: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(owner_url, app_role), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
