import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import (
    MISSING,
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from app.llm.models import ModelCapability, ProviderKind

MicroUSD = Annotated[int, Field(ge=0, le=10**12, description="Micro-USD per million tokens.")]


_HTTP_URL = TypeAdapter(AnyHttpUrl)


def _base_url(value: str) -> str:
    try:
        url = _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        raise ValueError("not an http(s) URL") from exc
    return str(url).rstrip("/")


Endpoint = Annotated[
    str, Field(max_length=2_000, json_schema_extra={"format": "uri"}), AfterValidator(_base_url)
]


class PriceCreate(BaseModel):
    """Micro-USD per million tokens: USD 0.15 per million is 150000."""

    model_config = ConfigDict(extra="forbid")

    input_micro_usd: MicroUSD
    cached_input_micro_usd: MicroUSD | None = Field(
        default=None, description="Default: the input price."
    )
    output_micro_usd: MicroUSD
    effective_from: datetime | None = Field(
        default=None, description="Default: now. Never in the past: usage keeps its price."
    )


class PriceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    effective_from: datetime
    input_micro_usd: int
    cached_input_micro_usd: int
    output_micro_usd: int


class _ModelFields(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    provider: ProviderKind
    provider_model: str = Field(
        min_length=1, max_length=200, description="The provider's id of the model."
    )
    endpoint: Endpoint | None = Field(
        default=None,
        description="Base URL (https://api.openai.com/v1 when unset for `openai`; required "
        "for `azure-openai`, the resource's URL, and for `openai-compatible`).",
    )
    azure_deployment: str | None = Field(default=None, min_length=1, max_length=200)
    azure_api_version: str | None = Field(default=None, min_length=1, max_length=50)
    context_window: int | None = Field(default=None, ge=1_000, le=10_000_000)
    max_output_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    capabilities: list[ModelCapability] = Field(default_factory=lambda: [ModelCapability.chat])
    embedding_dimensions: int | None = Field(default=None, ge=1, le=16_000)
    active: bool = True


class ModelCreate(_ModelFields):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(
        default=None, max_length=4_000, description="Written, never read back."
    )
    price: PriceCreate | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.provider == ProviderKind.local:
            raise ValueError("`local` models are the platform's own: choose another provider")
        problem = model_problem(
            self.provider,
            self.endpoint,
            self.azure_deployment,
            self.azure_api_version,
            self.capabilities,
            self.embedding_dimensions,
        )
        if problem:
            raise ValueError(problem)
        return self


def model_problem(
    provider: ProviderKind,
    endpoint: str | None,
    azure_deployment: str | None,
    azure_api_version: str | None,
    capabilities: list[ModelCapability] | list[str],
    embedding_dimensions: int | None,
) -> str | None:
    """What a model lacks, created or changed (a 422 that names it), or None."""
    if provider in (ProviderKind.azure_openai, ProviderKind.openai_compatible) and not endpoint:
        return f"a `{provider}` model needs `endpoint`"
    if provider == ProviderKind.azure_openai and not (azure_deployment and azure_api_version):
        return "an `azure-openai` model needs `azure_deployment` and `azure_api_version`"
    if (ModelCapability.embeddings in capabilities) != (embedding_dimensions is not None):
        return "`embedding_dimensions` goes with the `embeddings` capability, and only with it"
    return None


class ModelUpdate(BaseModel):
    """A partial update: the fields sent change. `api_key: null` removes the key."""

    model_config = ConfigDict(extra="forbid")

    name: str | MISSING = Field(default=MISSING, min_length=1, max_length=200)
    provider_model: str | MISSING = Field(default=MISSING, min_length=1, max_length=200)
    endpoint: Endpoint | MISSING | None = MISSING
    azure_deployment: str | MISSING | None = Field(default=MISSING, min_length=1, max_length=200)
    azure_api_version: str | MISSING | None = Field(default=MISSING, min_length=1, max_length=50)
    api_key: SecretStr | MISSING | None = Field(default=MISSING, max_length=4_000)
    context_window: int | MISSING | None = Field(default=MISSING, ge=1_000, le=10_000_000)
    max_output_tokens: int | MISSING | None = Field(default=MISSING, ge=1, le=1_000_000)
    capabilities: list[ModelCapability] | MISSING = MISSING
    embedding_dimensions: int | MISSING | None = Field(default=MISSING, ge=1, le=16_000)
    active: bool | MISSING = MISSING


class ModelRead(BaseModel):
    id: uuid.UUID
    owner_organization_id: uuid.UUID | None = Field(description="null: the platform's model.")
    name: str
    provider: ProviderKind
    provider_model: str
    endpoint: str | None
    azure_deployment: str | None
    azure_api_version: str | None
    has_api_key: bool
    api_key_hint: str | None = Field(description="The key's last four characters.")
    context_window: int | None
    max_output_tokens: int | None
    capabilities: list[ModelCapability]
    embedding_dimensions: int | None
    active: bool
    prices: list[PriceRead] = Field(description="Every version, the newest first.")
    created_at: datetime
    updated_at: datetime


class ModelTestResult(BaseModel):
    ok: bool
    latency_ms: float
    status_code: int | None = Field(description="The provider's HTTP status, if it answered.")
    error: str | None = Field(description="What went wrong, as the provider said it.")
