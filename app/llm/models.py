"""The model registry: which chat and embedding models exist, where they are, with which key
and at which prices.

A model belongs to an organization (its admins registered it, only it may use it) or, with
no owner, to the platform (the operator's: `ajc models add`, and the model the environment
configures, OPENAI_* / LLM_MODEL / LLM_PRICES, kept in step by `ajc migrate` and the
embedded start). Row-level security: `owner_or_platform` (app/core/rls.py), like secrets.

Prices are integers of micro-USD per million tokens (USD 0.15 per million is 150,000), in
versions: a new price is a new row from its `effective_from` on, so usage keeps the price it
was charged at. A model's API key is a secret (app/secrets/): sealed, referenced here, never
read back.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, RecordMixin, one_of


class ProviderKind(StrEnum):
    openai = "openai"  # api.openai.com, or another endpoint that is OpenAI's API
    azure_openai = "azure-openai"  # a deployment of an Azure OpenAI resource
    openai_compatible = "openai-compatible"  # vLLM, Ollama, TEI, a gateway...
    local = "local"  # computed in this process (the platform's local embedding models)


class ModelCapability(StrEnum):
    chat = "chat"
    tools = "tools"
    vision = "vision"
    json_mode = "json_mode"
    embeddings = "embeddings"


class ProviderModel(RecordMixin, Base):
    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("owner_organization_id", "name", postgresql_nulls_not_distinct=True),
        one_of("provider", ProviderKind),
        CheckConstraint(
            "(capabilities ? 'embeddings') = (embedding_dimensions IS NOT NULL)",
            name="embedding_dimensions_with_embeddings",
        ),
        # At most one model is the environment's: the platform's.
        Index(
            None,
            "from_environment",
            unique=True,
            postgresql_where=text("from_environment"),
        ),
        CheckConstraint(
            "NOT from_environment OR owner_organization_id IS NULL",
            name="environment_model_is_the_platforms",
        ),
    )

    owner_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(Text)
    provider: Mapped[ProviderKind] = mapped_column(Text)
    provider_model: Mapped[str] = mapped_column(Text)  # the provider's id of the model
    endpoint: Mapped[str | None] = mapped_column(Text)  # base URL (default: the provider's)
    azure_deployment: Mapped[str | None] = mapped_column(Text)
    azure_api_version: Mapped[str | None] = mapped_column(Text)
    api_key_secret_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("secrets.id"))
    context_window: Mapped[int | None] = mapped_column(Integer)
    max_output_tokens: Mapped[int | None] = mapped_column(Integer)
    capabilities: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    embedding_dimensions: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    from_environment: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class ModelPrice(RecordMixin, Base):
    """A price of a model from `effective_from` on, until the next one's."""

    __tablename__ = "model_prices"
    __table_args__ = (
        UniqueConstraint("model_id", "effective_from"),
        Index(None, "owner_organization_id"),
        CheckConstraint(
            "input_micro_usd >= 0 AND cached_input_micro_usd >= 0 AND output_micro_usd >= 0",
            name="prices_not_negative",
        ),
    )

    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    # The model's owner, repeated for row-level security; queries pair it with the model's.
    owner_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Micro-USD per million tokens.
    input_micro_usd: Mapped[int] = mapped_column(BigInteger)
    cached_input_micro_usd: Mapped[int] = mapped_column(BigInteger)
    output_micro_usd: Mapped[int] = mapped_column(BigInteger)
