from datetime import datetime

from sqlalchemy import DateTime, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base


class RateLimit(Base):
    """One rate limit's state (GCRA): when the key's next request would be due if requests
    came exactly at the allowed rate. A key is `<kind>:user:<uuid>` or `<kind>:org:<uuid>`.

    Infrastructure, not tenant data, like `webhook_events`: no `organization_id` and no
    content, only a key and a time, so no row-level security. The limiter runs outside any
    tenant's transaction and checks a user's and their organization's keys together.

    UNLOGGED: no write-ahead log for a row written on every limited request, at the price of
    the table being emptied after a crash (and absent on replicas). Losing the counters
    forgives at most one period of requests, once.
    """

    __tablename__ = "rate_limits"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    theoretical_arrival_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
