import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.prompts.engines import MAX_TEXT_CHARACTERS
from app.prompts.models import TemplateEngine, TemplateKind

LATEST = "latest"  # the implicit label: the newest version

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LabelName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$"), Field(examples=["production"])
]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARACTERS)]
Variables = Annotated[
    dict[str, Any],
    Field(
        description="The variables the text may use, as a JSON Schema of an object: "
        '`{"type": "object", "properties": {"topic": {"type": "string", "default": "news", '
        '"description": "…"}}, "required": ["topic"]}`.',
        examples=[{"type": "object", "properties": {"topic": {"type": "string"}}}],
    ),
]


class VersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text
    variables: Variables = Field(default_factory=lambda: {"type": "object", "properties": {}})


class TemplateCreate(VersionCreate):
    name: Name
    kind: TemplateKind
    engine: TemplateEngine = TemplateEngine.plain
    description: str = Field(default="", max_length=2000)


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    text: str
    variables: dict[str, Any]
    content_hash: str
    created_at: datetime


class TemplateRead(BaseModel):
    id: uuid.UUID
    name: str
    kind: TemplateKind
    engine: TemplateEngine
    description: str
    latest_version: int
    labels: dict[str, int] = Field(description="Each label's version; `latest` is implicit.")
    created_at: datetime
    updated_at: datetime


class LabelWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: LabelName | None = Field(
        default=None, description="Which version: a label's (default `latest`)…"
    )
    version: int | None = Field(default=None, ge=1, description="…or a version's number.")
    variables: dict[str, Any] = Field(default_factory=dict)


class Rendered(BaseModel):
    version: int
    text: str


class TemplateReference(BaseModel):
    """Instructions taken from a prompt template of the organization, rendered at each run."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="The template's name.")
    label: LabelName = Field(
        default=LATEST, description="Which version: a label's (`latest`: the newest)."
    )
    variables: dict[str, Any] = Field(default_factory=dict)


class TemplateReferenceRead(TemplateReference):
    template_id: uuid.UUID
