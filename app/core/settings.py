"""Every setting of the service, read once from the environment and `.env`.

Defaults work on a fresh machine: no `DATABASE_URL` means the embedded PostgreSQL under
`DATA_DIR`. `APP_ENV=production` refuses the development shortcuts (see `_refuse_dev_defaults`).
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 8000

    data_dir: Path = Path(".data")
    embedded_postgres_dir: Path | None = Field(
        default=None,
        description="Data folder of the embedded PostgreSQL; defaults to DATA_DIR/postgres.",
    )
    workspaces_dir: Path = Path("workspaces")

    database_url: str | None = Field(
        default=None,
        description="Application role's URL (no superuser, no BYPASSRLS). Unset: embedded.",
    )
    database_owner_url: str | None = Field(
        default=None,
        description="Owner role's URL, used for migrations. Defaults to DATABASE_URL.",
    )
    database_app_role: str = "ajc_app"
    embedded_database_name: str = "ajc"
    embedded_owner_role: str = "ajc_owner"
    database_pool_size: int = 10
    database_max_overflow: int = 10
    database_pool_timeout_seconds: float = 10.0
    database_statement_timeout_ms: int = 30_000

    max_request_body_bytes: int = 1_048_576

    run_worker_in_process: bool = Field(
        default=True,
        description="`ajc serve` also runs a job worker; turn off when `ajc worker` runs apart.",
    )
    worker_concurrency: int = 4
    worker_shutdown_timeout_seconds: float = 10.0

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def postgres_data_dir(self) -> Path:
        return self.embedded_postgres_dir or self.data_dir / "postgres"

    @model_validator(mode="after")
    def _refuse_dev_defaults(self) -> "Settings":
        if self.app_env == "production" and self.database_url is None:
            raise ValueError(
                "APP_ENV=production needs DATABASE_URL: the embedded PostgreSQL is for "
                "development and tests only"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
