import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from app.agents.models import KnowledgeSourceKind, KnowledgeSourceStatus


class TextSourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["text"] = "text"
    name: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=1_000_000)


class UrlSourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["url"] = "url"
    name: str = Field(min_length=1, max_length=200)
    url: AnyHttpUrl


SourceCreate = Annotated[TextSourceCreate | UrlSourceCreate, Field(discriminator="kind")]


class KnowledgeSourceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agent_id: uuid.UUID
    kind: KnowledgeSourceKind
    name: str
    url: str | None
    media_type: str | None
    size_bytes: int | None
    status: KnowledgeSourceStatus
    error: str | None = Field(description="Why the last ingestion failed.")
    chunk_count: int
    ingested_at: datetime | None
    created_at: datetime


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2_000)
    conversation_id: uuid.UUID | None = Field(
        default=None, description="Also search this conversation's files."
    )
    top_k: int | None = Field(default=None, ge=1, le=50, description="Default: the agent's.")


class Citation(BaseModel):
    """Where a passage comes from: enough for a front end to link to it."""

    chunk_id: uuid.UUID
    source_kind: Literal["knowledge_source", "file"]
    source_id: uuid.UUID
    source_name: str
    file_id: uuid.UUID | None = Field(description="For conversation files: GET /files/{id}.")
    page: int | None
    heading: str | None
    start: int | None = Field(description="Character offsets in the source's extracted text.")
    end: int | None


class SearchHit(BaseModel):
    content: str
    score: float = Field(description="Reciprocal-rank fusion of the two rankings.")
    similarity: float | None = Field(description="Cosine similarity, if found by meaning.")
    citation: Citation

    def as_part(self) -> dict[str, Any]:
        """How an assistant message's `parts` cite it."""
        return {"type": "citation", **self.citation.model_dump(mode="json")}


class SearchResult(BaseModel):
    embedding_model: str
    hits: list[SearchHit]
