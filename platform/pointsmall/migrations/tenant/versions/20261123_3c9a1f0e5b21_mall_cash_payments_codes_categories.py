"""mall: cash parts and payments, refunds, virtual codes, categories

Revision ID: 3c9a1f0e5b21
Revises: b22dd0fd3200
Create Date: 2026-11-23 04:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3c9a1f0e5b21"
down_revision: str | None = "b22dd0fd3200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.String(length=40), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["categories.id"], name=op.f("fk_categories_parent_id_categories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
    )
    op.create_table(
        "virtual_codes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=500), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_virtual_codes_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_virtual_codes_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_virtual_codes")),
        sa.UniqueConstraint("product_id", "code", name=op.f("uq_virtual_codes_product_id_code")),
    )
    op.create_index(
        "ix_virtual_codes_unassigned",
        "virtual_codes",
        ["product_id", "id"],
        postgresql_where=sa.text("order_id IS NULL"),
    )
    op.create_index(op.f("ix_virtual_codes_order_id"), "virtual_codes", ["order_id"])
    for column in (
        sa.Column("cash", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("payment", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("payment_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_transaction", sa.String(length=40), nullable=True),
        sa.Column("status_reason", sa.String(length=40), nullable=True),
    ):
        op.add_column("orders", column)
    op.create_index(
        "ix_orders_awaiting_payment",
        "orders",
        ["payment_expires_at"],
        postgresql_where=sa.text("status = 'pending_payment'"),
    )
    op.add_column("order_lines", sa.Column("cash", sa.Numeric(precision=14, scale=4)))
    op.add_column("coupons", sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("coupons", "voided_at")
    op.drop_column("order_lines", "cash")
    op.drop_index("ix_orders_awaiting_payment", table_name="orders")
    for name in (
        "status_reason",
        "refund_transaction",
        "payment_expires_at",
        "payment",
        "currency",
        "cash",
    ):
        op.drop_column("orders", name)
    op.drop_index(op.f("ix_virtual_codes_order_id"), table_name="virtual_codes")
    op.drop_index("ix_virtual_codes_unassigned", table_name="virtual_codes")
    op.drop_table("virtual_codes")
    op.drop_table("categories")
