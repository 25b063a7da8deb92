"""rules defects: how many days back a check-in may be dated

`settings.checkin_backdate_days`: a check-in's local day may be today or up to this many days
before (0, the default: today only).

Revision ID: d10f0a110001
Revises: d10f0a110003
Create Date: 2026-11-30 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d10f0a110001"
down_revision: str | None = "d10f0a110003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "settings",
        sa.Column(
            "checkin_backdate_days", sa.SmallInteger(), server_default=sa.text("0"), nullable=False
        ),
    )
    op.create_check_constraint(
        op.f("ck_settings_checkin_backdate_days"),
        "settings",
        "checkin_backdate_days BETWEEN 0 AND 365",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_settings_checkin_backdate_days"), "settings", type_="check")
    op.drop_column("settings", "checkin_backdate_days")
