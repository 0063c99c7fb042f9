import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import MISSING, AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.agents.models import AgentVisibility
from app.knowledge.models import EMBEDDING_MODELS
from app.prompts.schemas import TemplateReference, TemplateReferenceRead

Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]


def _indexed_model(model: str) -> str:
    if model not in EMBEDDING_MODELS:
        raise ValueError(f"embedding_model must be one of: {', '.join(EMBEDDING_MODELS)}")
    return model


# An embedding model the schema has an index for (app/knowledge/models.py).
EmbeddingModel = Annotated[str, AfterValidator(_indexed_model)]


class Capability(StrEnum):
    """The built-in, server-side tools an agent may be allowed to call."""

    search_knowledge = "search_knowledge"
    read_file = "read_file"
    update_state = "update_state"


class ModelSettings(BaseModel):
    """Which model answers and how; unset fields take the service's defaults."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=200_000)
    top_p: float | None = Field(default=None, gt=0, le=1)
    context_window: int | None = Field(
        default=None, ge=1_000, le=10_000_000, description="Tokens (default: the service's)."
    )


class RetrievalSettings(BaseModel):
    # An answer always has both fields, a request may leave either out: two schemas
    # (`-Input`, `-Output`), so a generated client does not demand them in a request.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    top_k: int = Field(default=5, ge=1, le=50)
    min_score: float = Field(default=0.0, ge=0, le=1)


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2_000)
    instructions: str = Field(default="", max_length=100_000)
    instructions_template: TemplateReference | None = Field(
        default=None,
        description="Instructions rendered from a prompt template at each run, in place of "
        "`instructions` (private agents only).",
    )
    chat_model_id: uuid.UUID | None = Field(
        default=None,
        description="A chat model of the registry (`GET /models`); null: the platform's default.",
    )
    model_settings: ModelSettings = Field(default_factory=ModelSettings)
    embedding_model: EmbeddingModel = "all-MiniLM-L6-v2"
    retrieval_settings: RetrievalSettings = Field(default_factory=RetrievalSettings)
    capabilities: list[Capability] = Field(default_factory=list)
    visibility: AgentVisibility = AgentVisibility.private


class AgentUpdate(BaseModel):
    """A partial update: only the fields sent change. None of them may be null (422 naming
    the field): to go back to a default, send it (`"description": ""`, `"capabilities": []`,
    `"model_settings": {}`)."""

    model_config = ConfigDict(extra="forbid")

    name: str | MISSING = Field(default=MISSING, min_length=1, max_length=200)
    description: str | MISSING = Field(default=MISSING, max_length=2_000)
    instructions: str | MISSING = Field(default=MISSING, max_length=100_000)
    instructions_template: TemplateReference | MISSING | None = MISSING
    chat_model_id: uuid.UUID | MISSING | None = MISSING
    model_settings: ModelSettings | MISSING = MISSING
    embedding_model: EmbeddingModel | MISSING = MISSING
    retrieval_settings: RetrievalSettings | MISSING = MISSING
    capabilities: list[Capability] | MISSING = MISSING
    visibility: AgentVisibility | MISSING = MISSING


class AgentSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    description: str
    visibility: AgentVisibility
    owner_organization_id: uuid.UUID | None


class AgentRead(AgentSummary):
    instructions: str
    instructions_template: TemplateReferenceRead | None
    chat_model_id: uuid.UUID | None
    model_settings: ModelSettings
    embedding_model: str
    retrieval_settings: RetrievalSettings
    capabilities: list[Capability]
    created_at: datetime
    updated_at: datetime


class CatalogSource(StrEnum):
    own = "own"  # the organization's own agent
    platform = "platform"  # the platform's (`ajc seed`)
    public = "public"  # another organization's public agent


class CatalogEntry(BaseModel):
    """An agent the organization may use once granted (`PUT /organizations/current/agents/{id}`)."""

    agent: AgentSummary
    source: CatalogSource
    granted: bool
    granted_at: datetime | None


class AgentGrant(BaseModel):
    agent: AgentSummary
    granted_at: datetime
    granted_by_user_id: uuid.UUID | None


def _valid_schedule(value: str | None) -> str | None:
    if value is not None and not croniter.is_valid(value):
        raise ValueError("not a cron expression (five fields, like `0 9 * * 1-5`)")
    return value


def _valid_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not an IANA time zone (like `Europe/Oslo`)") from exc
    return value


Schedule = Annotated[str | None, AfterValidator(_valid_schedule)]
TimeZone = Annotated[str, AfterValidator(_valid_timezone)]


class QuickTaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    prompt: str = Field(
        default="", max_length=20_000, description="The prompt, unless `prompt_template`."
    )
    prompt_template: TemplateReference | None = Field(
        default=None,
        description="The prompt rendered from a prompt template at each run, the run's "
        "`parameters` as its variables (over `variables`).",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="JSON Schema of the prompt's parameters."
    )
    schedule: Schedule = Field(default=None, description="Cron; runs for the scheduling admin.")
    schedule_timezone: TimeZone = "UTC"
    enabled: bool = True

    @model_validator(mode="after")
    def _one_prompt(self) -> "QuickTaskCreate":
        if bool(self.prompt) == (self.prompt_template is not None):
            raise ValueError("Give either `prompt` or `prompt_template`.")
        return self


class QuickTaskUpdate(BaseModel):
    """A partial update: only the fields sent change. `schedule: null` stops the schedule;
    every other field refuses null (422 naming it)."""

    model_config = ConfigDict(extra="forbid")

    name: str | MISSING = Field(default=MISSING, min_length=1, max_length=200)
    prompt: str | MISSING = Field(default=MISSING, max_length=20_000)
    prompt_template: TemplateReference | MISSING | None = MISSING
    parameters: dict[str, Any] | MISSING = MISSING
    schedule: Schedule | MISSING = MISSING
    schedule_timezone: TimeZone | MISSING = MISSING
    enabled: bool | MISSING = MISSING


class QuickTaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agent_id: uuid.UUID
    name: str
    prompt: str
    prompt_template: TemplateReferenceRead | None
    parameters: dict[str, Any]
    schedule: str | None
    schedule_timezone: str
    enabled: bool
    scheduled_by_user_id: uuid.UUID | None
    next_run_at: datetime | None
    last_run_at: datetime | None
