"""The mall: products members redeem points for, and the orders that redeem them."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from pointsmall.db import TenantBase, Timestamps


class Category(Timestamps, TenantBase):
    __tablename__ = "categories"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("categories.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Product(Timestamps, TenantBase):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # physical | virtual | coupon | service
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    points_price: Mapped[int] = mapped_column(BigInteger)
    cash_price: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    stock: Mapped[int | None] = mapped_column(BigInteger)  # None: unlimited
    per_member_limit: Mapped[int | None] = mapped_column(Integer)
    per_period_limit: Mapped[int | None] = mapped_column(Integer)
    limit_period: Mapped[str | None] = mapped_column(String(8))  # day | week | month
    tiers: Mapped[list[str] | None] = mapped_column(ARRAY(String(40)))  # None: everyone
    available_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    available_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    images: Mapped[list[str]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16))  # draft | active | archived
    # Coupons: what each issued code is worth, and for how many days it can be redeemed.
    coupon_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    coupon_valid_days: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),)


class Order(Timestamps, TenantBase):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    # pending_payment -> confirmed -> fulfilled; cancelled; refunded
    status: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)
    spend_transaction: Mapped[str | None] = mapped_column(String(40))
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The cash part (None: paid in points only), the provider's payment and its deadline.
    cash: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    payment: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    payment_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refund_transaction: Mapped[str | None] = mapped_column(String(40))
    status_reason: Mapped[str | None] = mapped_column(
        String(40)
    )  # why cancelled, e.g. payment_timeout

    __table_args__ = (
        Index("ix_orders_member_id_id", "member_id", "id"),
        Index(
            "ix_orders_awaiting_payment",
            "payment_expires_at",
            postgresql_where=text("status = 'pending_payment'"),
        ),
    )


class OrderLine(TenantBase):
    __tablename__ = "order_lines"

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), primary_key=True, index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigInteger)  # for the line: unit price x quantity
    cash: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))  # the line's cash part


class Coupon(TenantBase):
    """A single-use code issued by a coupon product's order, redeemed at the merchant's checkout."""

    __tablename__ = "coupons"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    member_id: Mapped[str] = mapped_column(String(40))
    value: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redeemed_reference: Mapped[str | None] = mapped_column(String(255))
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # order refunded


class VirtualCode(TenantBase):
    """A digital code the merchant uploaded for a virtual product; an order takes one per
    unit when it is confirmed. A virtual product's stock is its count of unassigned codes."""

    __tablename__ = "virtual_codes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    code: Mapped[str] = mapped_column(String(500))
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("product_id", "code"),
        Index(
            "ix_virtual_codes_unassigned",
            "product_id",
            "id",
            postgresql_where=text("order_id IS NULL"),
        ),
    )
