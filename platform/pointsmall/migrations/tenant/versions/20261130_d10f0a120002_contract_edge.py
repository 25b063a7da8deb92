"""contract edge: no schema change; keeps the chain

The settings' `name` and `cors_origins` live in the shared schema (the registry's name;
`shared.tenant_cors_origins`, which the edge reads before it knows the tenant), so the
tenant schema is unchanged.

Revision ID: d10f0a120002
Revises: d10f0a120001
Create Date: 2026-11-30 05:00:00.000000
"""

from collections.abc import Sequence

revision: str = "d10f0a120002"
down_revision: str | None = "d10f0a120001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
