"""Staff users (shared schema) and each tenant's own settings row (tenant schema)."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from pointsmall.db import SharedBase, TenantBase


class StaffUser(SharedBase):
    __tablename__ = "staff_users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("shared.tenants.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="admin")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # Emails are stored lower-cased, so this is case-insensitive.
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)


class SpareSchema(SharedBase):
    """A tenant schema made and migrated ahead of time under a tenant id no one has yet: a
    signup claims one (a row lock and a DELETE) instead of running the DDL itself."""

    __tablename__ = "spare_schemas"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SignupIdempotencyKey(SharedBase):
    """`POST /signup`'s `Idempotency-Key` (signup has no tenant yet, so its keys are shared).

    Written in the signup's own transaction. The answer carries the first API key, so it is
    sealed; the request's fingerprint is not stored beside it (the body holds the password,
    and a plain digest of it would be a fast guessing oracle): it is the sealed answer's
    associated data, so the answer opens only for the same request.
    """

    __tablename__ = "signup_idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    response_body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class TenantCorsOrigin(SharedBase):
    """An origin (`scheme://host[:port]`) a tenant lets browsers call the API from. Kept in
    the shared schema: a CORS preflight carries no credential, so it is judged before the
    tenant is known, against every tenant's origins."""

    __tablename__ = "tenant_cors_origins"

    tenant_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("shared.tenants.id", ondelete="CASCADE"), primary_key=True
    )
    origin: Mapped[str] = mapped_column(String(300), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantSettings(TenantBase):
    """One row (id = 1): the merchant's program settings."""

    __tablename__ = "settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    # How much one point is worth in the default currency, and the largest share of a
    # price payable in points (0..1).
    point_value: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal("0.01"))
    max_points_share: Mapped[Decimal] = mapped_column(Numeric(4, 3), default=Decimal("1"))
    # How many days before today (the program's time zone) a check-in may be dated.
    checkin_backdate_days: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("checkin_backdate_days BETWEEN 0 AND 365", name="checkin_backdate_days"),
    )
