"""shared: spare tenant schemas, made ahead of signups

Revision ID: 8a2f4c6e1d30
Revises: d7ed1c981b27
Create Date: 2026-11-23 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8a2f4c6e1d30"
down_revision: str | None = "d7ed1c981b27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spare_schemas",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_spare_schemas")),
        schema="shared",
    )


def downgrade() -> None:
    op.drop_table("spare_schemas", schema="shared")
