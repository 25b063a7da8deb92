"""contract (rules): deleted rules are hidden, tiers list their benefits

- `rules.deleted_at`: `DELETE /v1/rules/{id}` marks the rule deleted (and inactive) rather
  than removing it, since the ledger's credits name its versions; a deleted rule is 404 and
  absent from lists.
- `tiers.benefits`: what the tier gives its members, `[{key, description}]`, shown on the
  mall page.

Revision ID: d10f0a120001
Revises: d10f0a110001
Create Date: 2026-11-30 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d10f0a120001"
down_revision: str | None = "d10f0a110001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rules", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tiers",
        sa.Column(
            "benefits",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("tiers", "benefits")
    op.drop_column("rules", "deleted_at")
