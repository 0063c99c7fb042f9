"""Every setting of the service, read once from the environment and `.env`.

Defaults work on a fresh machine: no `DATABASE_URL` means the embedded PostgreSQL under
`DATA_DIR`. `APP_ENV=production` refuses the development shortcuts (see `_refuse_dev_defaults`).
The README's configuration table lists these fields; a test keeps the two in step.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: Literal["development", "test", "production"] = Field(
        default="development",
        description="`production` refuses the development defaults (embedded database, "
        "development identity).",
    )
    log_level: str = Field(default="INFO", description="Level of the JSON logs on stderr.")
    host: str = Field(default="127.0.0.1", description="Address `ajc serve` listens on.")
    port: int = Field(default=8000, description="Port `ajc serve` listens on.")

    data_dir: Path = Field(
        default=Path(".data"), description="Local state: the embedded database, dev keys."
    )
    embedded_postgres_dir: Path | None = Field(
        default=None,
        description="Data folder of the embedded PostgreSQL (default: DATA_DIR/postgres).",
    )
    embedded_database_name: str = Field(
        default="ajc", description="Database created in the embedded PostgreSQL."
    )
    embedded_owner_role: str = Field(
        default="ajc_owner", description="Role that owns the embedded schema and migrates it."
    )
    workspaces_dir: Path = Field(
        default=Path("workspaces"), description="Root of the files users upload and runs make."
    )
    storage_backend: Literal["local", "s3"] = Field(
        default="local",
        description="Where file bytes live: `local` (under WORKSPACES_DIR) or `s3` (an "
        "S3-compatible bucket, S3_*), for several API machines.",
    )
    s3_bucket: str | None = Field(
        default=None, description="Bucket of the files (needed with STORAGE_BACKEND=s3)."
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible store (SeaweedFS, MinIO...), path-style "
        "(default: AWS S3).",
    )
    s3_region: str = Field(default="us-east-1", description="Region of the bucket.")
    s3_access_key_id: str | None = Field(
        default=None, description="Access key (default: the AWS environment or instance role)."
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, description="Secret key of S3_ACCESS_KEY_ID."
    )
    s3_key_prefix: str = Field(
        default="", description="Prefix of every key in the bucket (a bucket shared by services)."
    )
    s3_presigned_download_seconds: int = Field(
        default=0,
        ge=0,
        description="Above 0: file downloads redirect (307) to a presigned URL valid this long, "
        "so the bytes do not pass through the API. 0: the API streams them.",
    )

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the application role (no superuser, no BYPASSRLS). "
        "Unset: the embedded PostgreSQL, started and migrated by the service.",
    )
    database_owner_url: str | None = Field(
        default=None,
        description="URL of the schema owner, used by `ajc migrate` (default: DATABASE_URL).",
    )
    database_app_role: str = Field(
        default="ajc_app", description="Role the migrations grant table access to."
    )
    database_pool_size: int = Field(
        default=10,
        description=(
            "Connections kept in the ORM sessions' pool, and the most the hot reads' pool "
            "(asyncpg) opens, per process."
        ),
    )
    database_max_overflow: int = Field(
        default=10, description="Extra connections the ORM sessions' pool may open under load."
    )
    database_pool_timeout_seconds: float = Field(
        default=10.0, description="Wait for a pooled connection (and to connect) before failing."
    )
    database_statement_timeout_ms: int = Field(
        default=30_000, description="PostgreSQL statement_timeout of the API's connections."
    )

    max_request_body_bytes: int = Field(
        default=1_048_576, description="Largest request body accepted (413 beyond)."
    )

    api_workers: int = Field(
        default=1,
        ge=1,
        description="Processes `ajc serve` runs the API in (each with its own pool, caches and "
        "in-process job worker); about one per core.",
    )
    file_max_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1, description="Largest file a user may upload (413 beyond)."
    )
    run_worker_in_process: bool = Field(
        default=True,
        description="`ajc serve` also runs a job worker; turn off when `ajc worker` runs apart.",
    )
    worker_concurrency: int = Field(default=4, description="Jobs a worker runs at once.")
    worker_shutdown_timeout_seconds: float = Field(
        default=10.0, description="How long shutdown waits for the in-process worker."
    )
    worker_stalled_seconds: float = Field(
        default=30.0,
        ge=1,
        description="A worker silent this long (no heartbeat: killed, lost) is taken for dead, "
        "and the jobs it was running are run again.",
    )

    clerk_issuer: str | None = Field(
        default=None,
        description="Issuer (`iss`) of Clerk session tokens, e.g. https://clerk.example.com. "
        "Unset, with no CLERK_JWT_KEY: development identity (keys under DATA_DIR).",
    )
    clerk_jwks_url: str | None = Field(
        default=None, description="Clerk's JWKS (default: CLERK_ISSUER/.well-known/jwks.json)."
    )
    clerk_jwt_key: str | None = Field(
        default=None, description="Clerk's PEM public key: verify tokens without the network."
    )
    clerk_authorized_parties: str | None = Field(
        default=None,
        description="Comma-separated origins allowed in `azp` (unset: `azp` not checked).",
    )
    cors_allow_origins: str | None = Field(
        default=None,
        description="Comma-separated origins of the front end that browsers may call the API "
        "from, with credentials (cookies, Authorization); `*` is refused. Unset: no CORS.",
    )
    clerk_webhook_signing_secret: str | None = Field(
        default=None, description="Svix signing secret (`whsec_...`) of the Clerk webhook."
    )
    clerk_jwks_refresh_interval_seconds: float = Field(
        default=30.0,
        description="Least time between two JWKS fetches for unknown `kid`s (flood guard).",
    )
    clerk_clock_skew_seconds: int = Field(
        default=5, description="Leeway on `exp` and `nbf` for clock skew."
    )

    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Master keys that wrap each organization's data key (app/secrets/): "
        "`id:key,...`, each key 32 bytes of URL-safe base64 (`ajc encryption-key` makes one). "
        "The first encrypts, all decrypt: to rotate, put a new one first and run "
        "`ajc rotate-keys`. Unset: a key generated under DATA_DIR (refused in production).",
    )

    openai_api_key: str | None = Field(
        default=None, description="Key of the OpenAI-compatible endpoint (OpenAI, vLLM, Ollama)."
    )
    openai_base_url: str | None = Field(
        default=None, description="Base URL of the OpenAI-compatible endpoint (default: OpenAI)."
    )
    llm_model: str | None = Field(
        default=None,
        description="Default chat model. No model and no key: the labelled no-LLM mode.",
    )
    llm_timeout_seconds: float = Field(
        default=60.0, description="Timeout of one model request (connect and between chunks)."
    )
    llm_max_retries: int = Field(
        default=2, description="Retries with backoff on 429/5xx before the first token."
    )
    llm_context_tokens: int = Field(
        default=128_000, description="Context window of the default model, in tokens."
    )
    llm_reserved_output_tokens: int = Field(
        default=4_096, description="Room kept in the window for the answer."
    )
    llm_prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='USD per million tokens by model, JSON: {"gpt-4o-mini": {"input": 0.15, '
        '"output": 0.6}}. Models without a price show no cost.',
    )
    embeddings_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint for embedding models other than the local "
        "ones (default: OPENAI_BASE_URL).",
    )
    embeddings_api_key: str | None = Field(
        default=None, description="Key of EMBEDDINGS_BASE_URL (default: OPENAI_API_KEY)."
    )
    egress_allow_private_addresses: bool = Field(
        default=False,
        description="Let outbound requests that tenants aim (URL knowledge sources) reach "
        "addresses inside the network (loopback, private, link-local...): for development "
        "only. Cloud metadata addresses stay refused.",
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        description="Conversations with no activity for this long are deleted (daily job, "
        "`ajc cleanup`).",
    )
    run_max_seconds: float = Field(
        default=300.0, description="A run (even one whose client left) ends after this long."
    )
    run_heartbeat_seconds: float = Field(
        default=15.0, description="An SSE comment after this much silence keeps proxies open."
    )
    run_flush_interval_ms: int = Field(
        default=50,
        ge=0,
        description="A run's stream is written at most this often once its answer has begun "
        "(what arrives in between goes in one write); 0 writes each piece as it comes.",
    )
    run_max_concurrent: int = Field(
        # bench/bench_streams.py on 2 cores, 500 runs opened at once: since the streams cost
        # half the CPU per token (issue 14), every admitted run had its first byte within 1 s
        # at 30 per process (max 0.89 s, with the machine busy besides), not at 50 (1.10 s).
        default=30,
        ge=1,
        description="Runs one API process streams at once; the next is refused (503 with "
        "Retry-After). Total capacity is this times `ajc serve --workers`.",
    )

    # Per user and per organization, per RATE_LIMIT_PERIOD_SECONDS (app/limits/): far above
    # what a person does by hand, so they stop scripts and runaway clients, not users.
    rate_limits_enabled: bool = Field(
        default=True,
        description="Refuse runs, uploads, ingestions and searches beyond the RATE_LIMIT_* "
        "counts (429 with Retry-After); off, no database work is done for them (benchmarks).",
    )
    rate_limit_period_seconds: float = Field(
        default=60.0,
        gt=0,
        description="The period the RATE_LIMIT_* counts are per: each allows that many requests "
        "at once, then one every period / count.",
    )
    rate_limit_runs_per_user: int = Field(
        default=60, ge=1, description="Runs (agent and quick task) one user may start per period."
    )
    rate_limit_runs_per_organization: int = Field(
        default=1000, ge=1, description="Runs all of an organization's users may start per period."
    )
    rate_limit_uploads_per_user: int = Field(
        default=120,
        ge=1,
        description="Uploads (conversation files, knowledge files) one user may make per period.",
    )
    rate_limit_uploads_per_organization: int = Field(
        default=2000,
        ge=1,
        description="Uploads all of an organization's users may make per period.",
    )
    rate_limit_ingestions_per_user: int = Field(
        default=60,
        ge=1,
        description="Knowledge sources one user may add or re-ingest per period.",
    )
    rate_limit_ingestions_per_organization: int = Field(
        default=600,
        ge=1,
        description="Knowledge sources an organization's users may add or re-ingest per period.",
    )
    rate_limit_searches_per_user: int = Field(
        default=300, ge=1, description="Knowledge searches one user may make per period."
    )
    rate_limit_searches_per_organization: int = Field(
        default=5000,
        ge=1,
        description="Knowledge searches all of an organization's users may make per period.",
    )

    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token `GET /metrics` requires (`Authorization: Bearer <it>`). "
        "Unset: `/metrics` answers loopback clients only.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="Base URL of an OpenTelemetry collector (OTLP over HTTP, protobuf), e.g. "
        "http://collector:4318: traces of requests, SQL, outbound HTTP and jobs go there. "
        "Unset: no tracing, at no cost.",
    )
    otel_service_name: str = Field(
        default="ajc", description="`service.name` of the traces this process sends."
    )

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_model and (self.openai_api_key or self.openai_base_url))

    @property
    def development_identity(self) -> bool:
        """No Clerk configured: tokens are signed by a key pair generated under DATA_DIR."""
        return self.clerk_issuer is None and self.clerk_jwt_key is None

    @property
    def authorized_parties(self) -> list[str]:
        parties = self.clerk_authorized_parties or ""
        return [party.strip() for party in parties.split(",") if party.strip()]

    @property
    def cors_origins(self) -> list[str]:
        origins = self.cors_allow_origins or ""
        return [origin.strip().rstrip("/") for origin in origins.split(",") if origin.strip()]

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def postgres_data_dir(self) -> Path:
        return self.embedded_postgres_dir or self.data_dir / "postgres"

    @model_validator(mode="after")
    def _refuse_dev_defaults(self) -> "Settings":
        if self.clerk_jwt_key and not self.clerk_issuer:
            raise ValueError("CLERK_JWT_KEY needs CLERK_ISSUER: tokens are checked against it")
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("STORAGE_BACKEND=s3 needs S3_BUCKET")
        if "*" in self.cors_origins:
            # Credentials are always allowed (the session cookie), and a browser would let
            # any site read any user's answers with them: name the front end's origins.
            raise ValueError("CORS_ALLOW_ORIGINS cannot be `*`: list the front end's origins")
        if self.app_env != "production":
            return self
        if self.database_url is None:
            raise ValueError(
                "APP_ENV=production needs DATABASE_URL: the embedded PostgreSQL is for "
                "development and tests only"
            )
        if self.clerk_issuer is None:
            raise ValueError(
                "APP_ENV=production needs CLERK_ISSUER (and CLERK_JWKS_URL or CLERK_JWT_KEY): "
                "development identity is refused in production"
            )
        if not self.clerk_webhook_signing_secret:
            raise ValueError("APP_ENV=production needs CLERK_WEBHOOK_SIGNING_SECRET")
        if self.encryption_keys is None:
            raise ValueError(
                "APP_ENV=production needs ENCRYPTION_KEYS: the development master key under "
                "DATA_DIR is for development only"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
