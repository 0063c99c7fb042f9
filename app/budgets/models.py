"""Budgets: monthly limits on what an organization (or one of its members) spends on models,
in cost (micro-USD) or in tokens, that runs cannot overshoot.

- `Budget`: the limit and its soft thresholds (percentages that notify once per window).
- `BudgetWindow`: one budget's calendar month in the organization's time zone, made when
  first needed (there is no reset job to forget: a new month is a new row, which never
  inherits the last one's figures). `spent` is what the usage ledger charged to the window
  (settled); `reserved` what calls in progress may still cost, apart.
- `BudgetReservation`: what one model call (its usage request id) holds in one window
  until it settles, or until `expires_at`, after which the call is taken to have crashed
  and the amount goes back (app/budgets/tasks.py; a reservation also releases the expired
  reservations of the windows it locks).

The rules are app/budgets/service.py's; the statements app/budgets/repository.py's.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, TenantMixin, one_of, tenant_reference


class BudgetMetric(StrEnum):
    cost = "cost"  # micro-USD, at the models' prices
    tokens = "tokens"  # input and output tokens together


class Budget(TenantMixin, Base):
    __tablename__ = "budgets"
    __table_args__ = (
        # One budget per metric for the organization (user_id NULL) and per member.
        UniqueConstraint(
            "organization_id", "user_id", "metric", postgresql_nulls_not_distinct=True
        ),
        one_of("metric", BudgetMetric),
        CheckConstraint("limit_amount > 0", name="limit_amount"),
        CheckConstraint("1 <= ALL(thresholds) AND 100 >= ALL(thresholds)", name="thresholds"),
    )

    # None: the whole organization's spend; a user: that member's spend in it.
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    metric: Mapped[BudgetMetric] = mapped_column(Text)
    limit_amount: Mapped[int] = mapped_column(BigInteger)  # the hard limit, in the metric
    # Soft thresholds in percent of the limit, ascending: crossing one notifies once a window.
    thresholds: Mapped[list[int]] = mapped_column(
        ARRAY(Integer), default=list, server_default=text("'{}'")
    )


class BudgetWindow(TenantMixin, Base):
    __tablename__ = "budget_windows"
    __table_args__ = (
        tenant_reference("budget_id", "budgets"),
        UniqueConstraint("organization_id", "budget_id", "starts_at"),
        CheckConstraint("spent >= 0 AND reserved >= 0", name="amounts"),
        CheckConstraint("starts_at < ends_at", name="period"),
    )

    budget_id: Mapped[uuid.UUID]
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    spent: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    reserved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The thresholds already notified in this window.
    notified: Mapped[list[int]] = mapped_column(
        ARRAY(Integer), default=list, server_default=text("'{}'")
    )


class BudgetReservation(TenantMixin, Base):
    __tablename__ = "budget_reservations"
    __table_args__ = (
        tenant_reference("window_id", "budget_windows"),
        UniqueConstraint("organization_id", "request_id", "window_id"),
        CheckConstraint("amount >= 0", name="amount"),
        Index(None, "organization_id", "expires_at"),
    )

    window_id: Mapped[uuid.UUID]
    # The usage event's request id the call will settle under (`chat:<message id>`).
    request_id: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
