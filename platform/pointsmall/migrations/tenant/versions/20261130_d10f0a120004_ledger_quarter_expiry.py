"""ledger: `end_of_period` expiry by quarter works

`ledger_expiry` added `'1 ' || expiry_period` as an interval, and `1 quarter` is no interval
PostgreSQL reads: every credit of a point type expiring at the end of a quarter failed (a
data error, answered 422). The period's length is now spelled out.

Revision ID: d10f0a120004
Revises: d10f0a120003
Create Date: 2026-11-30 05:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d10f0a120004"
down_revision: str | None = "d10f0a120003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _expiry(period_length: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION ledger_expiry(p_type text, p_now timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $fn$
DECLARE
  v point_types%ROWTYPE;
  v_tz text;
  v_local timestamp;
BEGIN
  SELECT * INTO v FROM point_types WHERE key = p_type;
  IF v.expiry_policy = 'rolling' THEN
    RETURN p_now + make_interval(days => v.expiry_days);
  ELSIF v.expiry_policy = 'fixed_date' THEN
    RETURN v.expiry_date;
  ELSIF v.expiry_policy = 'end_of_period' THEN
    SELECT timezone INTO v_tz FROM settings WHERE id = 1;
    v_local := (p_now + make_interval(days => coalesce(v.expiry_days, 0))) AT TIME ZONE coalesce(v_tz, 'UTC');
    v_local := date_trunc(v.expiry_period, v_local) + {period_length};
    RETURN v_local AT TIME ZONE coalesce(v_tz, 'UTC');
  END IF;
  RETURN NULL;
END $fn$;
"""


FIXED = _expiry(
    "CASE v.expiry_period WHEN 'quarter' THEN interval '3 months'"
    " ELSE ('1 ' || v.expiry_period)::interval END"
)
OLD = _expiry("('1 ' || v.expiry_period)::interval")


def upgrade() -> None:
    op.execute(FIXED)


def downgrade() -> None:
    op.execute(OLD)
