"""The ledger's tables (tenant schema). Writes go through the SQL functions in
`ledger/sql/`; these models serve reads, migrations and tests."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from pointsmall.db import TenantBase


class PointType(TenantBase):
    __tablename__ = "point_types"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # never | rolling (N days after earning) | fixed_date | end_of_period (month/quarter/year
    # containing earning + N days, in the tenant's time zone)
    expiry_policy: Mapped[str] = mapped_column(String(16), server_default="never")
    expiry_days: Mapped[int | None] = mapped_column(Integer)
    expiry_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expiry_period: Mapped[str | None] = mapped_column(String(8))
    # immediate | days (available N days after earning) | manual (until released)
    pending_policy: Mapped[str] = mapped_column(String(16), server_default="immediate")
    pending_days: Mapped[int | None] = mapped_column(Integer)
    allow_negative: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Balance(TenantBase):
    """A member's running balance for one point type. Only member wallets have one:
    system accounts' balances are sums of postings, so no row serialises every earn."""

    __tablename__ = "balances"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    point_type: Mapped[str] = mapped_column(ForeignKey("point_types.key"), primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger, server_default="0")
    pending: Mapped[int] = mapped_column(BigInteger, server_default="0")
    lifetime_earned: Mapped[int] = mapped_column(BigInteger, server_default="0")
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")

    __table_args__ = (
        CheckConstraint("pending >= 0", name="pending_not_negative"),
        CheckConstraint("lifetime_earned >= 0", name="lifetime_not_negative"),
        # 2^53: the most every JSON client reads exactly (see MAX_POINTS).
        CheckConstraint(
            "available <= 9007199254740992 AND pending <= 9007199254740992"
            " AND lifetime_earned <= 9007199254740992",
            name="within_limit",
        ),
    )


class LedgerTransaction(TenantBase):
    __tablename__ = "ledger_transactions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # earn | spend | adjust | reverse | expire | release
    kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    point_type: Mapped[str] = mapped_column(ForeignKey("point_types.key"))
    # The signed change to the member's points (available + pending).
    points: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(500))
    reference: Mapped[str | None] = mapped_column(String(255))
    reverses: Mapped[str | None] = mapped_column(ForeignKey("ledger_transactions.id"), unique=True)
    granted_by: Mapped[str | None] = mapped_column(String(80))
    rule_version: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_ledger_transactions_member_id_id", "member_id", "id"),)


class Posting(TenantBase):
    """One leg of a transaction. A transaction's postings sum to zero. Append-only."""

    __tablename__ = "postings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    # wallet | pending (a member's) | issuance | redemption | breakage | adjustment (system)
    account: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[str | None] = mapped_column(String(40))
    point_type: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_postings_account_point_type", "account", "point_type"),)


class Lot(TenantBase):
    """Points from one credit: spent soonest-expiring first, expired by the sweep."""

    __tablename__ = "lots"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    member_id: Mapped[str] = mapped_column(String(40))
    point_type: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    # The part of `amount` that paid off debt when the lot was credited.
    debt_paid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    pending: Mapped[bool] = mapped_column(Boolean)
    available_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    granted_by: Mapped[str | None] = mapped_column(String(80))
    rule_version: Mapped[str | None] = mapped_column(String(80))

    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
        Index(
            "ix_lots_spendable",
            "member_id",
            "point_type",
            "expires_at",
            "id",
            postgresql_where=text("remaining > 0 AND NOT pending"),
        ),
        Index("ix_lots_expiring", "expires_at", postgresql_where=text("remaining > 0")),
        Index("ix_lots_maturing", "available_at", postgresql_where=text("pending")),
    )


class LotDraw(TenantBase):
    """Which lots a debit (spend, expiry, clawback) drew on, and how much."""

    __tablename__ = "lot_draws"

    transaction_id: Mapped[str] = mapped_column(
        ForeignKey("ledger_transactions.id"), primary_key=True
    )
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), primary_key=True, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class OutboxEvent(TenantBase):
    """Events written in the same transaction as the change; the webhook worker sends them."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    # What the webhook relay has yet to pick up, in order.
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )
