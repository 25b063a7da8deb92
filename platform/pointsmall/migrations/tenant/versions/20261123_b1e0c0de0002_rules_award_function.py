"""rules_award: credit every award of an event and record it, in one round trip

Revision ID: b1e0c0de0002
Revises: 1a5f6781be5b
Create Date: 2026-11-23 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b1e0c0de0002"
down_revision: str | None = "1a5f6781be5b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL = r"""
-- p_awards: [{"rule_id", "rule_version", "point_type", "points", "reason"}, ...]
-- Returns the credits' transactions as a JSON array, in the awards' order.
CREATE FUNCTION rules_award(p_event text, p_member text, p_occurred_at timestamptz, p_awards jsonb)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_award jsonb;
  v_written jsonb;
  v_out jsonb := '[]'::jsonb;
BEGIN
  FOR v_award IN SELECT value FROM jsonb_array_elements(p_awards) LOOP
    v_written := ledger_credit('earn', p_member, v_award->>'point_type', (v_award->>'points')::bigint,
                               v_award->>'reason', p_event, 'rule:' || (v_award->>'rule_id'),
                               v_award->>'rule_version', NULL, NULL, NULL);
    INSERT INTO rule_awards (rule_id, rule_version, member_id, event_id, transaction_id, points, occurred_at)
    VALUES (v_award->>'rule_id', v_award->>'rule_version', p_member, p_event,
            v_written->'body'->>'id', (v_award->>'points')::bigint, p_occurred_at);
    v_out := v_out || jsonb_build_array(v_written->'body');
  END LOOP;
  RETURN v_out;
END $fn$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP FUNCTION rules_award(text, text, timestamptz, jsonb)")
