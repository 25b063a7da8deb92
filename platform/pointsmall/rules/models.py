"""Rules (versioned), the events they judge, and the awards that caps and budgets count."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from pointsmall.db import TenantBase, Timestamps


class Rule(Timestamps, TenantBase):
    __tablename__ = "rules"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # active | inactive
    version: Mapped[int] = mapped_column(Integer)  # the current version
    # Set by DELETE: the rule is hidden (404, not listed) but kept, as credits name its versions.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RuleVersion(TenantBase):
    """An immutable snapshot of a rule; every credit names the version that granted it."""

    __tablename__ = "rule_versions"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)  # rule id + ".v" + version
    rule_id: Mapped[str] = mapped_column(ForeignKey("rules.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(64))
    condition: Mapped[str] = mapped_column(Text)
    effect: Mapped[dict[str, Any]] = mapped_column(JSONB)
    point_type: Mapped[str] = mapped_column(String(40))
    caps: Mapped[dict[str, Any]] = mapped_column(JSONB)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    priority: Mapped[int] = mapped_column(Integer)
    stacking: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Event(TenantBase):
    """An event, stored write-once with what it produced."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The dedupe key: `order.paid:<order_id>` for orders, else the Idempotency-Key.
    key: Mapped[str | None] = mapped_column(String(300), unique=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RuleAward(TenantBase):
    """Points a rule gave a member for an event: what caps and budgets add up."""

    __tablename__ = "rule_awards"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("rules.id"))
    rule_version: Mapped[str] = mapped_column(ForeignKey("rule_versions.id"))
    member_id: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    # How much of `points` refunds have taken back so far.
    clawed_back: Mapped[int] = mapped_column(BigInteger, server_default="0")
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_rule_awards_rule_member_time", "rule_id", "member_id", "occurred_at"),
    )


class CheckIn(TenantBase):
    """One per member per local day (the tenant's time zone); `streak` counts the run."""

    __tablename__ = "checkins"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    local_date: Mapped[date] = mapped_column(Date, primary_key=True)
    streak: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Tier(TenantBase):
    """A level members reach by points earned (from rules) or money spent in a window."""

    __tablename__ = "tiers"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    threshold: Mapped[int] = mapped_column(BigInteger)
    basis: Mapped[str] = mapped_column(String(16))  # points | spend
    window_kind: Mapped[str] = mapped_column(String(16))  # rolling_days | calendar_year
    window_days: Mapped[int | None] = mapped_column(Integer)
    earn_multiplier: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    retention_days: Mapped[int] = mapped_column(Integer)
    # [{key, description}]: what the tier gives, for the mall page.
    benefits: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MemberTier(TenantBase):
    __tablename__ = "member_tiers"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    tier_key: Mapped[str | None] = mapped_column(ForeignKey("tiers.key"))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the member must qualify again (plus the tier's retention) or move down.
    review_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class TierChange(TenantBase):
    __tablename__ = "tier_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    from_tier: Mapped[str | None] = mapped_column(String(40))
    to_tier: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(200))
