"""refunds: partial clawbacks of a credit, and how much of each rule award was clawed back

Revision ID: b1e0c0de0003
Revises: e96b90c37370
Create Date: 2026-11-23 03:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b1e0c0de0003"
down_revision: str | None = "e96b90c37370"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL = r"""
-- Takes back `p_points` of credit `p_target` (a refund): from what is left of its lot first;
-- the rest is netted against the member's other points and then becomes debt, where the
-- point type allows it (else 'points_already_spent'). A `clawback` transaction that names
-- the credit in `reference`; several may follow one credit (partial refunds).
CREATE FUNCTION ledger_clawback(p_target text, p_points bigint, p_reason text, p_granted_by text,
                                p_now timestamptz)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_t ledger_transactions%ROWTYPE;
  v_type point_types%ROWTYPE;
  v_lot lots%ROWTYPE;
  v_txn text := ledger_id('txn');
  v_account text;
  v_from_lot bigint;
  v_short bigint;
  v_body jsonb;
BEGIN
  p_now := coalesce(p_now, now());
  SELECT * INTO v_t FROM ledger_transactions WHERE id = p_target;
  IF NOT FOUND OR v_t.points <= 0 THEN RAISE 'not_found' USING ERRCODE = 'P0001'; END IF;
  PERFORM ledger_lock(v_t.member_id, v_t.point_type, false);
  SELECT * INTO v_type FROM point_types WHERE key = v_t.point_type;
  SELECT * INTO v_lot FROM lots WHERE transaction_id = p_target;
  v_account := CASE v_t.kind WHEN 'earn' THEN 'issuance' ELSE 'adjustment' END;
  INSERT INTO ledger_transactions (id, kind, member_id, point_type, points, reason, reference,
                                   granted_by, created_at)
  VALUES (v_txn, 'clawback', v_t.member_id, v_t.point_type, -p_points, p_reason, p_target,
          p_granted_by, p_now);
  v_from_lot := least(p_points, v_lot.remaining);
  IF v_from_lot > 0 THEN
    INSERT INTO lot_draws (transaction_id, lot_id, amount) VALUES (v_txn, v_lot.id, v_from_lot);
    UPDATE lots SET remaining = remaining - v_from_lot WHERE id = v_lot.id;
  END IF;
  IF v_lot.pending THEN
    -- Pending points were never spendable, so the lot holds all that is taken back.
    INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
      (v_txn, 'pending', v_t.member_id, v_t.point_type, -v_from_lot),
      (v_txn, v_account, NULL, v_t.point_type, v_from_lot);
    UPDATE balances SET pending = pending - v_from_lot, version = version + 1
     WHERE member_id = v_t.member_id AND point_type = v_t.point_type;
    UPDATE ledger_transactions SET points = -v_from_lot WHERE id = v_txn;
  ELSE
    v_short := p_points - v_from_lot;
    IF v_short > 0 AND NOT v_type.allow_negative THEN
      RAISE 'points_already_spent' USING ERRCODE = 'P0001';
    END IF;
    IF v_short > 0 THEN
      PERFORM ledger_draw(v_txn, v_t.member_id, v_t.point_type, v_short, p_now, true);
    END IF;
    INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
      (v_txn, 'wallet', v_t.member_id, v_t.point_type, -p_points),
      (v_txn, v_account, NULL, v_t.point_type, p_points);
    UPDATE balances SET available = available - p_points, version = version + 1
     WHERE member_id = v_t.member_id AND point_type = v_t.point_type;
  END IF;
  v_body := ledger_txn_json(v_txn);
  PERFORM ledger_event('points.reversed', v_body);
  RETURN v_body;
END $fn$;
"""


def upgrade() -> None:
    op.add_column(
        "rule_awards", sa.Column("clawed_back", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_clawback(text, bigint, text, text, timestamptz)")
    op.drop_column("rule_awards", "clawed_back")
