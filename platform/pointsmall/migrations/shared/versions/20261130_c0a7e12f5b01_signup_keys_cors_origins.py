"""shared: signup idempotency keys, tenants' CORS origins

`signup_idempotency_keys`: `POST /signup`'s Idempotency-Key and its sealed answer (signup
has no tenant schema yet). `tenant_cors_origins`: the origins each tenant lets browsers
call the API from, judged by the edge before the tenant is known (a preflight carries no
credential).

Revision ID: c0a7e12f5b01
Revises: 8a2f4c6e1d30
Create Date: 2026-11-30 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0a7e12f5b01"
down_revision: str | None = "8a2f4c6e1d30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signup_idempotency_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_signup_idempotency_keys")),
        schema="shared",
    )
    op.create_index(
        op.f("ix_signup_idempotency_keys_created_at"),
        "signup_idempotency_keys",
        ["created_at"],
        unique=False,
        schema="shared",
    )
    op.create_table(
        "tenant_cors_origins",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["shared.tenants.id"],
            name=op.f("fk_tenant_cors_origins_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "origin", name=op.f("pk_tenant_cors_origins")),
        schema="shared",
    )
    op.create_index(
        op.f("ix_tenant_cors_origins_origin"),
        "tenant_cors_origins",
        ["origin"],
        unique=False,
        schema="shared",
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_tenant_cors_origins_origin"), table_name="tenant_cors_origins", schema="shared"
    )
    op.drop_table("tenant_cors_origins", schema="shared")
    op.drop_index(
        op.f("ix_signup_idempotency_keys_created_at"),
        table_name="signup_idempotency_keys",
        schema="shared",
    )
    op.drop_table("signup_idempotency_keys", schema="shared")
