"""shared: a tenant's sandbox schema

`tenants.sandbox_schema`: the schema `pm_test_` keys act on, taken from the spare pool the
first time a test key is used (null until then); live keys act on `schema_name`.

Revision ID: 5b1d3e7a9c02
Revises: c0a7e12f5b01
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1d3e7a9c02"
down_revision: str | None = "c0a7e12f5b01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column("sandbox_schema", sa.String(length=63), nullable=True),
        schema="shared",
    )
    op.create_unique_constraint(
        op.f("uq_tenants_sandbox_schema"), "tenants", ["sandbox_schema"], schema="shared"
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("uq_tenants_sandbox_schema"), "tenants", type_="unique", schema="shared"
    )
    op.drop_column("tenants", "sandbox_schema", schema="shared")
