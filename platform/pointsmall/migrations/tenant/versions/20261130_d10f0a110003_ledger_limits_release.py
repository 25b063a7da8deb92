"""ledger: balances capped at 2^53; a release names what it released

- `ck_balances_within_limit`: available, pending and lifetime_earned stay at most 2^53, the
  largest integer every JSON client reads exactly (a request may carry at most that much,
  so two earns could otherwise pass it, and 1,024 of them overflowed bigint). `NOT VALID`:
  existing rows are not re-checked, every change from now on is.
- `ledger_release`: the release transaction's `points` are the points that became
  available (it said 0), and a release of one earn names that earn in `reference`.
- `ledger_release_one`: releases one earn and answers with its release transaction;
  refuses what cannot be released (`not_pending`, `already_released`, `already_reversed`).

Revision ID: d10f0a110003
Revises: d10f0a110002
Create Date: 2026-11-30 04:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d10f0a110003"
down_revision: str | None = "d10f0a110002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RELEASE = r"""
CREATE OR REPLACE FUNCTION ledger_release(p_now timestamptz, p_only_txn text) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_group record;
  v_lot record;
  v_txn text;
  v_count bigint := 0;
  v_points bigint;
BEGIN
  FOR v_group IN
    SELECT member_id, point_type FROM lots
     WHERE pending AND remaining > 0
       AND (CASE WHEN p_only_txn IS NULL THEN available_at <= p_now ELSE transaction_id = p_only_txn END)
     GROUP BY member_id, point_type ORDER BY member_id, point_type
  LOOP
    PERFORM 1 FROM balances WHERE member_id = v_group.member_id AND point_type = v_group.point_type FOR UPDATE;
    v_txn := ledger_id('txn');
    v_points := 0;
    INSERT INTO ledger_transactions (id, kind, member_id, point_type, points, reason, reference,
                                     created_at)
    VALUES (v_txn, 'release', v_group.member_id, v_group.point_type, 0, 'released', p_only_txn,
            p_now);
    FOR v_lot IN
      SELECT id, remaining FROM lots
       WHERE member_id = v_group.member_id AND point_type = v_group.point_type AND pending
         AND remaining > 0
         AND (CASE WHEN p_only_txn IS NULL THEN available_at <= p_now ELSE transaction_id = p_only_txn END)
       ORDER BY id FOR UPDATE
    LOOP
      UPDATE lots SET pending = false, remaining = 0, available_at = p_now WHERE id = v_lot.id;
      UPDATE balances SET pending = pending - v_lot.remaining
       WHERE member_id = v_group.member_id AND point_type = v_group.point_type;
      PERFORM ledger_fill(v_group.member_id, v_group.point_type, v_lot.id, v_lot.remaining);
      UPDATE lots SET debt_paid = amount - remaining WHERE id = v_lot.id;
      INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
        (v_txn, 'pending', v_group.member_id, v_group.point_type, -v_lot.remaining),
        (v_txn, 'wallet', v_group.member_id, v_group.point_type, v_lot.remaining);
      v_count := v_count + 1;
      v_points := v_points + v_lot.remaining;
    END LOOP;
    -- What became available (the member's total is unchanged: pending turned available).
    UPDATE ledger_transactions SET points = v_points WHERE id = v_txn;
    PERFORM ledger_event('points.pending_released', ledger_txn_json(v_txn));
  END LOOP;
  RETURN v_count;
END $fn$;

CREATE OR REPLACE FUNCTION ledger_release_one(
  p_txn text, p_now timestamptz, p_key text, p_fingerprint bytea)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_replay jsonb := ledger_claim_key(p_key, p_fingerprint);
  v_kind text;
BEGIN
  IF v_replay IS NOT NULL THEN RETURN v_replay; END IF;
  p_now := coalesce(p_now, now());
  SELECT kind INTO v_kind FROM ledger_transactions WHERE id = p_txn;
  IF NOT FOUND THEN
    RAISE 'not_found' USING ERRCODE = 'P0001';
  END IF;
  -- Only an earn that went to the pending account was ever pending.
  IF v_kind <> 'earn' OR NOT EXISTS (
      SELECT 1 FROM postings WHERE transaction_id = p_txn AND account = 'pending' AND amount > 0)
  THEN
    RAISE 'not_pending' USING ERRCODE = 'P0001';
  END IF;
  IF ledger_release(p_now, p_txn) = 0 THEN
    IF EXISTS (SELECT 1 FROM ledger_transactions WHERE reverses = p_txn) THEN
      RAISE 'already_reversed' USING ERRCODE = 'P0001';
    END IF;
    RAISE 'already_released' USING ERRCODE = 'P0001';
  END IF;
  RETURN ledger_store_key(p_key, 201, (
    SELECT ledger_txn_json(id) FROM ledger_transactions
     WHERE kind = 'release' AND reference = p_txn ORDER BY id DESC LIMIT 1));
END $fn$;
"""

# The function as revision b1e0c0de0001 made it.
OLD_RELEASE = r"""
CREATE OR REPLACE FUNCTION ledger_release(p_now timestamptz, p_only_txn text) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_group record;
  v_lot record;
  v_txn text;
  v_count bigint := 0;
BEGIN
  FOR v_group IN
    SELECT member_id, point_type FROM lots
     WHERE pending AND remaining > 0
       AND (CASE WHEN p_only_txn IS NULL THEN available_at <= p_now ELSE transaction_id = p_only_txn END)
     GROUP BY member_id, point_type ORDER BY member_id, point_type
  LOOP
    PERFORM 1 FROM balances WHERE member_id = v_group.member_id AND point_type = v_group.point_type FOR UPDATE;
    v_txn := ledger_id('txn');
    INSERT INTO ledger_transactions (id, kind, member_id, point_type, points, reason, created_at)
    VALUES (v_txn, 'release', v_group.member_id, v_group.point_type, 0, 'released', p_now);
    FOR v_lot IN
      SELECT id, remaining FROM lots
       WHERE member_id = v_group.member_id AND point_type = v_group.point_type AND pending
         AND remaining > 0
         AND (CASE WHEN p_only_txn IS NULL THEN available_at <= p_now ELSE transaction_id = p_only_txn END)
       ORDER BY id FOR UPDATE
    LOOP
      UPDATE lots SET pending = false, remaining = 0, available_at = p_now WHERE id = v_lot.id;
      UPDATE balances SET pending = pending - v_lot.remaining
       WHERE member_id = v_group.member_id AND point_type = v_group.point_type;
      PERFORM ledger_fill(v_group.member_id, v_group.point_type, v_lot.id, v_lot.remaining);
      UPDATE lots SET debt_paid = amount - remaining WHERE id = v_lot.id;
      INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
        (v_txn, 'pending', v_group.member_id, v_group.point_type, -v_lot.remaining),
        (v_txn, 'wallet', v_group.member_id, v_group.point_type, v_lot.remaining);
      v_count := v_count + 1;
    END LOOP;
    PERFORM ledger_event('points.pending_released', ledger_txn_json(v_txn));
  END LOOP;
  RETURN v_count;
END $fn$;
"""

LIMIT = 2**53


def upgrade() -> None:
    op.execute(
        "ALTER TABLE balances ADD CONSTRAINT ck_balances_within_limit CHECK ("
        f"available <= {LIMIT} AND pending <= {LIMIT} AND lifetime_earned <= {LIMIT}) NOT VALID"
    )
    op.execute(RELEASE)


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_release_one(text, timestamptz, text, bytea)")
    op.execute(OLD_RELEASE)
    op.execute("ALTER TABLE balances DROP CONSTRAINT ck_balances_within_limit")
