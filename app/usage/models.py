"""Usage events: one row per model call (a chat round, an embedding of documents or of a
search query, a model's test), with its tokens and its cost at the price in force.

The table is a ledger, not a view of other tables: it has no foreign keys, so retention
(a conversation removed after 30 days, a user or an agent deleted) never changes what an
organization was charged. Its rows are written once, in the transaction of the work that
made the call (a run's answer, an ingestion's chunks), and never updated; `request_id` is
unique per organization, so a save that is tried again does not count twice.

Indexing: a B-tree on (organization_id, occurred_at), chosen over BRIN on the time and over
monthly partitions by bench/bench_usage.py on a million events (README "Usage and cost"):
every query is one organization's time range, which the B-tree reads as one contiguous
range, where BRIN on the time reads every organization's rows of the range; partitions would
need the partition key in the unique key (breaking the per-request idempotency) and a job to
create them.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, TenantMixin, one_of


class UsagePurpose(StrEnum):
    chat = "chat"  # a round of a run: the model's answer (up to a tool call, or whole)
    embedding_ingest = "embedding_ingest"  # a batch of a document's chunks
    embedding_search = "embedding_search"  # a search query (a run's retrieval, a search)
    model_test = "model_test"  # `POST /models/{id}/test`


class UsageEvent(TenantMixin, Base):
    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("organization_id", "request_id"),
        Index(None, "organization_id", "occurred_at"),
        one_of("purpose", UsagePurpose),
    )

    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the call began
    request_id: Mapped[str] = mapped_column(Text)
    purpose: Mapped[UsagePurpose] = mapped_column(Text)
    # Who and where, as they were: plain ids (no foreign keys, see above).
    user_id: Mapped[uuid.UUID | None]
    agent_id: Mapped[uuid.UUID | None]
    conversation_id: Mapped[uuid.UUID | None]
    run_id: Mapped[str | None] = mapped_column(Text)
    # The registry's model (None: a model outside it, such as the local embedders) and the
    # name it was called by.
    model_id: Mapped[uuid.UUID | None]
    model_name: Mapped[str] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer)
    cached_input_tokens: Mapped[int] = mapped_column(Integer)  # part of input_tokens
    output_tokens: Mapped[int] = mapped_column(Integer)
    # The provider gave no count: the tokens are this service's estimate.
    tokens_estimated: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    # The price version charged (model_prices.id) and the cost in micro-USD, rounded up;
    # both None when the model has no price in force: no cost rather than a made-up one.
    price_id: Mapped[uuid.UUID | None]
    # The prompt template versions (app/prompts/) the call's instructions and its quick
    # task's prompt came from, if any.
    instructions_template_version_id: Mapped[uuid.UUID | None]
    task_template_version_id: Mapped[uuid.UUID | None]
    cost_micro_usd: Mapped[int | None] = mapped_column(BigInteger)
