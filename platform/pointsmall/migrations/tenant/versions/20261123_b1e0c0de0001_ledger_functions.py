"""ledger functions: earn/spend/adjust/reverse in one round trip; expiry and release sweeps

Each write is one plpgsql function call: it claims the idempotency key, locks the member's
balance row, writes the transaction, its postings (summing to zero), lots and lot draws,
updates the balance and writes the outbox event, all in the caller's single statement.
`SET search_path FROM CURRENT` pins each function to the schema it was created in.

Errors are RAISEd with SQLSTATE P0001 and a stable code as the message.

Revision ID: b1e0c0de0001
Revises: 93223d1a9f55
Create Date: 2026-11-23 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b1e0c0de0001"
down_revision: str | None = "93223d1a9f55"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL = r"""
INSERT INTO point_types (key, name) VALUES ('points', 'Points');

CREATE FUNCTION ledger_id(p_prefix text) RETURNS text
LANGUAGE sql VOLATILE AS $fn$
  SELECT p_prefix || '_'
    || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
    || substr(replace(gen_random_uuid()::text, '-', ''), 1, 14)
$fn$;

CREATE FUNCTION ledger_ts(p timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$fn$;

CREATE FUNCTION ledger_txn_json(p_id text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $fn$
  SELECT jsonb_build_object(
    'id', t.id, 'object', 'transaction', 'kind', t.kind, 'member_id', t.member_id,
    'point_type', t.point_type, 'points', t.points, 'reason', t.reason,
    'reference', t.reference, 'reverses', t.reverses, 'granted_by', t.granted_by,
    'created_at', ledger_ts(t.created_at))
  FROM ledger_transactions t WHERE t.id = p_id
$fn$;

-- Claims an Idempotency-Key. NULL: go ahead (the key row commits with the change).
-- Otherwise the stored answer to replay; a different request with the key raises.
CREATE FUNCTION ledger_claim_key(p_key text, p_fingerprint bytea) RETURNS jsonb
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_row idempotency_keys%ROWTYPE;
BEGIN
  IF p_key IS NULL THEN RETURN NULL; END IF;
  INSERT INTO idempotency_keys (key, fingerprint, response_status, response_body, response_type)
  VALUES (p_key, p_fingerprint, 0, ''::bytea, 'application/json')
  ON CONFLICT (key) DO NOTHING;
  IF FOUND THEN RETURN NULL; END IF;
  SELECT * INTO v_row FROM idempotency_keys WHERE key = p_key;
  IF v_row.fingerprint IS DISTINCT FROM p_fingerprint THEN
    RAISE 'idempotency_conflict' USING ERRCODE = 'P0001';
  END IF;
  RETURN jsonb_build_object('replayed', true, 'status', v_row.response_status,
                            'body', convert_from(v_row.response_body, 'UTF8')::jsonb);
END $fn$;

CREATE FUNCTION ledger_store_key(p_key text, p_status int, p_body jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF p_key IS NOT NULL THEN
    UPDATE idempotency_keys SET response_status = p_status,
      response_body = convert_to(p_body::text, 'UTF8') WHERE key = p_key;
  END IF;
  RETURN jsonb_build_object('replayed', false, 'status', p_status, 'body', p_body);
END $fn$;

-- Checks the member and point type, creates the balance row if needed and locks it.
-- Every writer of a member's points takes this lock first, so they serialise per member.
CREATE FUNCTION ledger_lock(p_member text, p_type text, p_require_active boolean)
RETURNS balances LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_status text;
  v_balance balances%ROWTYPE;
BEGIN
  SELECT status INTO v_status FROM members WHERE id = p_member;
  IF NOT FOUND THEN RAISE 'member_not_found' USING ERRCODE = 'P0001'; END IF;
  IF p_require_active AND v_status <> 'active' THEN
    RAISE 'member_suspended' USING ERRCODE = 'P0001';
  END IF;
  PERFORM 1 FROM point_types WHERE key = p_type;
  IF NOT FOUND THEN RAISE 'point_type_not_found' USING ERRCODE = 'P0001'; END IF;
  INSERT INTO balances (member_id, point_type) VALUES (p_member, p_type) ON CONFLICT DO NOTHING;
  SELECT * INTO v_balance FROM balances WHERE member_id = p_member AND point_type = p_type FOR UPDATE;
  RETURN v_balance;
END $fn$;

CREATE FUNCTION ledger_expiry(p_type text, p_now timestamptz) RETURNS timestamptz
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
    v_local := date_trunc(v.expiry_period, v_local) + ('1 ' || v.expiry_period)::interval;
    RETURN v_local AT TIME ZONE coalesce(v_tz, 'UTC');
  END IF;
  RETURN NULL;
END $fn$;

-- Puts points into the member's wallet: first pays off any debt, the rest into `p_lot`.
CREATE FUNCTION ledger_fill(p_member text, p_type text, p_lot bigint, p_points bigint)
RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_available bigint;
  v_paid bigint;
BEGIN
  SELECT available INTO v_available FROM balances WHERE member_id = p_member AND point_type = p_type;
  v_paid := least(p_points, greatest(0, -v_available));
  UPDATE lots SET remaining = remaining + p_points - v_paid WHERE id = p_lot;
  UPDATE balances SET available = available + p_points, version = version + 1
   WHERE member_id = p_member AND point_type = p_type;
END $fn$;

-- Takes `p_points` from the member's spendable lots, soonest expiry first, recording draws.
-- Returns what it could not take.
CREATE FUNCTION ledger_draw(p_txn text, p_member text, p_type text, p_points bigint,
                            p_now timestamptz, p_include_expired boolean)
RETURNS bigint LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_left bigint := p_points;
  v_take bigint;
  v_lot record;
BEGIN
  FOR v_lot IN
    SELECT id, remaining FROM lots
     WHERE member_id = p_member AND point_type = p_type AND remaining > 0 AND NOT pending
       AND (p_include_expired OR expires_at IS NULL OR expires_at > p_now)
     ORDER BY expires_at NULLS LAST, id
  LOOP
    EXIT WHEN v_left = 0;
    v_take := least(v_left, v_lot.remaining);
    UPDATE lots SET remaining = remaining - v_take WHERE id = v_lot.id;
    INSERT INTO lot_draws (transaction_id, lot_id, amount) VALUES (p_txn, v_lot.id, v_take)
      ON CONFLICT (transaction_id, lot_id) DO UPDATE SET amount = lot_draws.amount + excluded.amount;
    v_left := v_left - v_take;
  END LOOP;
  RETURN v_left;
END $fn$;

CREATE FUNCTION ledger_event(p_type text, p_data jsonb) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $fn$
  INSERT INTO outbox (event_id, type, payload) VALUES (ledger_id('evt'), p_type, p_data)
$fn$;

-- earn (p_kind 'earn', from issuance) or a positive adjustment (p_kind 'adjust').
-- The hottest path: one balance UPDATE, no read-back of what it just wrote.
CREATE FUNCTION ledger_credit(
  p_kind text, p_member text, p_type text, p_points bigint, p_reason text, p_reference text,
  p_granted_by text, p_rule_version text, p_now timestamptz, p_key text, p_fingerprint bytea)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_replay jsonb := ledger_claim_key(p_key, p_fingerprint);
  v_txn text := ledger_id('txn');
  v_source text := CASE p_kind WHEN 'earn' THEN 'issuance' ELSE 'adjustment' END;
  v_balance balances%ROWTYPE;
  v_type point_types%ROWTYPE;
  v_pending boolean;
  v_paid bigint := 0;
  v_body jsonb;
BEGIN
  IF v_replay IS NOT NULL THEN RETURN v_replay; END IF;
  p_now := coalesce(p_now, now());
  v_balance := ledger_lock(p_member, p_type, true);
  SELECT * INTO v_type FROM point_types WHERE key = p_type;
  v_pending := p_kind = 'earn' AND v_type.pending_policy <> 'immediate';
  IF NOT v_pending THEN
    v_paid := least(p_points, greatest(0, -v_balance.available));  -- pays debt first
  END IF;
  INSERT INTO ledger_transactions (id, kind, member_id, point_type, points, reason, reference,
                                   granted_by, rule_version, created_at)
  VALUES (v_txn, p_kind, p_member, p_type, p_points, p_reason, p_reference, p_granted_by,
          p_rule_version, p_now);
  INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
    (v_txn, v_source, NULL, p_type, -p_points),
    (v_txn, CASE WHEN v_pending THEN 'pending' ELSE 'wallet' END, p_member, p_type, p_points);
  INSERT INTO lots (transaction_id, member_id, point_type, amount, remaining, debt_paid, pending,
                    available_at, expires_at, granted_by, rule_version)
  VALUES (v_txn, p_member, p_type, p_points, p_points - v_paid, v_paid, v_pending,
          CASE WHEN NOT v_pending THEN p_now
               WHEN v_type.pending_policy = 'days' THEN p_now + make_interval(days => v_type.pending_days)
          END,
          CASE WHEN v_type.expiry_policy = 'never' THEN NULL ELSE ledger_expiry(p_type, p_now) END,
          p_granted_by, p_rule_version);
  UPDATE balances
     SET available = available + CASE WHEN v_pending THEN 0 ELSE p_points END,
         pending = pending + CASE WHEN v_pending THEN p_points ELSE 0 END,
         lifetime_earned = lifetime_earned + p_points,
         version = version + 1
   WHERE member_id = p_member AND point_type = p_type;
  v_body := jsonb_build_object(
    'id', v_txn, 'object', 'transaction', 'kind', p_kind, 'member_id', p_member,
    'point_type', p_type, 'points', p_points, 'reason', p_reason, 'reference', p_reference,
    'reverses', NULL, 'granted_by', p_granted_by, 'created_at', ledger_ts(p_now));
  PERFORM ledger_event('points.earned', v_body);
  RETURN ledger_store_key(p_key, 201, v_body);
END $fn$;

-- spend (p_kind 'spend', to redemption) or a negative adjustment (p_kind 'adjust').
CREATE FUNCTION ledger_debit(
  p_kind text, p_member text, p_type text, p_points bigint, p_reason text, p_reference text,
  p_granted_by text, p_now timestamptz, p_key text, p_fingerprint bytea)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_replay jsonb := ledger_claim_key(p_key, p_fingerprint);
  v_txn text := ledger_id('txn');
  v_sink text := CASE p_kind WHEN 'spend' THEN 'redemption' ELSE 'adjustment' END;
  v_body jsonb;
BEGIN
  IF v_replay IS NOT NULL THEN RETURN v_replay; END IF;
  p_now := coalesce(p_now, now());
  PERFORM ledger_lock(p_member, p_type, p_kind = 'spend');
  INSERT INTO ledger_transactions (id, kind, member_id, point_type, points, reason, reference,
                                   granted_by, created_at)
  VALUES (v_txn, p_kind, p_member, p_type, -p_points, p_reason, p_reference, p_granted_by, p_now);
  IF ledger_draw(v_txn, p_member, p_type, p_points, p_now, false) > 0 THEN
    RAISE 'insufficient_points' USING ERRCODE = 'P0001';
  END IF;
  INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
    (v_txn, 'wallet', p_member, p_type, -p_points),
    (v_txn, v_sink, NULL, p_type, p_points);
  UPDATE balances SET available = available - p_points, version = version + 1
   WHERE member_id = p_member AND point_type = p_type;
  v_body := ledger_txn_json(v_txn);
  PERFORM ledger_event('points.spent', v_body);
  RETURN ledger_store_key(p_key, 201, v_body);
END $fn$;

CREATE FUNCTION ledger_reverse(
  p_target text, p_reason text, p_granted_by text, p_now timestamptz, p_key text,
  p_fingerprint bytea)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_replay jsonb := ledger_claim_key(p_key, p_fingerprint);
  v_t ledger_transactions%ROWTYPE;
  v_type point_types%ROWTYPE;
  v_txn text := ledger_id('txn');
  v_account text;
  v_lot lots%ROWTYPE;
  v_expired bigint;
  v_total bigint;
  v_short bigint;
  v_draw record;
  v_body jsonb;
BEGIN
  IF v_replay IS NOT NULL THEN RETURN v_replay; END IF;
  p_now := coalesce(p_now, now());
  SELECT * INTO v_t FROM ledger_transactions WHERE id = p_target;
  IF NOT FOUND THEN RAISE 'not_found' USING ERRCODE = 'P0001'; END IF;
  IF v_t.kind = 'reverse' THEN RAISE 'cannot_reverse_reversal' USING ERRCODE = 'P0001'; END IF;
  IF v_t.kind NOT IN ('earn', 'spend', 'adjust') THEN
    RAISE 'not_reversible' USING ERRCODE = 'P0001';
  END IF;
  PERFORM ledger_lock(v_t.member_id, v_t.point_type, false);
  IF EXISTS (SELECT 1 FROM ledger_transactions WHERE reverses = p_target) THEN
    RAISE 'already_reversed' USING ERRCODE = 'P0001';
  END IF;
  SELECT * INTO v_type FROM point_types WHERE key = v_t.point_type;
  INSERT INTO ledger_transactions (id, kind, member_id, point_type, points, reason, reverses,
                                   granted_by, created_at)
  VALUES (v_txn, 'reverse', v_t.member_id, v_t.point_type, 0, p_reason, p_target, p_granted_by, p_now);

  IF v_t.points > 0 THEN
    -- A credit: take back what is left of its lot; what was spent becomes debt, if allowed.
    v_account := CASE v_t.kind WHEN 'earn' THEN 'issuance' ELSE 'adjustment' END;
    SELECT * INTO v_lot FROM lots WHERE transaction_id = p_target;
    IF v_lot.pending THEN
      v_total := v_lot.remaining;
      IF v_total > 0 THEN
        INSERT INTO lot_draws (transaction_id, lot_id, amount) VALUES (v_txn, v_lot.id, v_total);
        UPDATE lots SET remaining = 0 WHERE id = v_lot.id;
      END IF;
      INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
        (v_txn, 'pending', v_t.member_id, v_t.point_type, -v_total),
        (v_txn, v_account, NULL, v_t.point_type, v_total);
      UPDATE balances SET pending = pending - v_total, version = version + 1
       WHERE member_id = v_t.member_id AND point_type = v_t.point_type;
    ELSE
      SELECT coalesce(sum(d.amount), 0) INTO v_expired
        FROM lot_draws d JOIN ledger_transactions x ON x.id = d.transaction_id
       WHERE d.lot_id = v_lot.id AND x.kind = 'expire';
      v_total := v_lot.amount - v_expired;
      v_short := v_total - v_lot.remaining;  -- spent, or paid off earlier debt
      IF v_short > 0 AND NOT v_type.allow_negative THEN
        RAISE 'points_already_spent' USING ERRCODE = 'P0001';
      END IF;
      IF v_lot.remaining > 0 THEN
        INSERT INTO lot_draws (transaction_id, lot_id, amount) VALUES (v_txn, v_lot.id, v_lot.remaining);
        UPDATE lots SET remaining = 0 WHERE id = v_lot.id;
      END IF;
      IF v_short > 0 THEN
        -- Net the shortfall against the member's other points first; the rest is debt.
        PERFORM ledger_draw(v_txn, v_t.member_id, v_t.point_type, v_short, p_now, true);
      END IF;
      INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
        (v_txn, 'wallet', v_t.member_id, v_t.point_type, -v_total),
        (v_txn, v_account, NULL, v_t.point_type, v_total);
      UPDATE balances SET available = available - v_total, version = version + 1
       WHERE member_id = v_t.member_id AND point_type = v_t.point_type;
    END IF;
    UPDATE ledger_transactions SET points = -v_total WHERE id = v_txn;
  ELSE
    -- A debit: each drawn lot gets its points back, unless it has expired since (breakage).
    v_account := CASE v_t.kind WHEN 'spend' THEN 'redemption' ELSE 'adjustment' END;
    v_total := 0;
    FOR v_draw IN
      SELECT d.lot_id, d.amount, l.expires_at FROM lot_draws d JOIN lots l ON l.id = d.lot_id
       WHERE d.transaction_id = p_target ORDER BY d.lot_id
    LOOP
      IF v_draw.expires_at IS NOT NULL AND v_draw.expires_at <= p_now THEN
        INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
          (v_txn, v_account, NULL, v_t.point_type, -v_draw.amount),
          (v_txn, 'breakage', NULL, v_t.point_type, v_draw.amount);
      ELSE
        PERFORM ledger_fill(v_t.member_id, v_t.point_type, v_draw.lot_id, v_draw.amount);
        INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES
          (v_txn, v_account, NULL, v_t.point_type, -v_draw.amount),
          (v_txn, 'wallet', v_t.member_id, v_t.point_type, v_draw.amount);
        v_total := v_total + v_draw.amount;
      END IF;
    END LOOP;
    UPDATE ledger_transactions SET points = v_total WHERE id = v_txn;
  END IF;
  v_body := ledger_txn_json(v_txn);
  PERFORM ledger_event('points.reversed', v_body);
  RETURN ledger_store_key(p_key, 201, v_body);
END $fn$;

-- Set-based expiry of every lot whose time has come: one `expire` transaction per member
-- and point type, to breakage. Running it twice changes nothing. Returns lots expired.
CREATE FUNCTION ledger_expire(p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_count bigint;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS ledger_sweep (
    lot_id bigint, member_id text, point_type text, remaining bigint, pending boolean
  ) ON COMMIT DROP;
  TRUNCATE ledger_sweep;
  -- Lock the balance rows first, in key order, as every other writer does.
  PERFORM 1 FROM balances b
   WHERE (b.member_id, b.point_type) IN (
     SELECT member_id, point_type FROM lots WHERE remaining > 0 AND expires_at <= p_now)
   ORDER BY b.member_id, b.point_type FOR UPDATE;
  INSERT INTO ledger_sweep
  SELECT id, member_id, point_type, remaining, pending FROM lots
   WHERE remaining > 0 AND expires_at <= p_now;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count = 0 THEN RETURN 0; END IF;
  CREATE TEMP TABLE IF NOT EXISTS ledger_sweep_txn (
    txn text, member_id text, point_type text, wallet bigint, pending bigint
  ) ON COMMIT DROP;
  TRUNCATE ledger_sweep_txn;
  INSERT INTO ledger_sweep_txn
  SELECT ledger_id('txn'), member_id, point_type,
         sum(remaining) FILTER (WHERE NOT pending), sum(remaining) FILTER (WHERE pending)
    FROM ledger_sweep GROUP BY member_id, point_type;
  INSERT INTO ledger_transactions (id, kind, member_id, point_type, points, reason, created_at)
  SELECT txn, 'expire', member_id, point_type, -(coalesce(wallet, 0) + coalesce(pending, 0)),
         'expired', p_now FROM ledger_sweep_txn;
  INSERT INTO lot_draws (transaction_id, lot_id, amount)
  SELECT t.txn, s.lot_id, s.remaining FROM ledger_sweep s
    JOIN ledger_sweep_txn t USING (member_id, point_type);
  INSERT INTO postings (transaction_id, account, member_id, point_type, amount)
  SELECT txn, 'wallet', member_id, point_type, -wallet FROM ledger_sweep_txn WHERE wallet > 0
  UNION ALL
  SELECT txn, 'pending', member_id, point_type, -pending FROM ledger_sweep_txn WHERE pending > 0
  UNION ALL
  SELECT txn, 'breakage', NULL, point_type, coalesce(wallet, 0) + coalesce(pending, 0)
    FROM ledger_sweep_txn;
  UPDATE lots l SET remaining = 0 FROM ledger_sweep s WHERE l.id = s.lot_id;
  UPDATE balances b SET available = b.available - coalesce(t.wallet, 0),
                        pending = b.pending - coalesce(t.pending, 0), version = b.version + 1
    FROM ledger_sweep_txn t WHERE b.member_id = t.member_id AND b.point_type = t.point_type;
  INSERT INTO outbox (event_id, type, payload)
  SELECT ledger_id('evt'), 'points.expired', ledger_txn_json(txn) FROM ledger_sweep_txn;
  RETURN v_count;
END $fn$;

-- Releases pending lots whose time has come (policy `days`), or one transaction's lot when
-- `p_only_txn` is given (policy `manual`). One `release` transaction per member and type.
CREATE FUNCTION ledger_release(p_now timestamptz, p_only_txn text) RETURNS bigint
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


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    for name in (
        "ledger_release(timestamptz, text)",
        "ledger_expire(timestamptz)",
        "ledger_reverse(text, text, text, timestamptz, text, bytea)",
        "ledger_debit(text, text, text, bigint, text, text, text, timestamptz, text, bytea)",
        "ledger_credit(text, text, text, bigint, text, text, text, text, timestamptz, text, bytea)",
        "ledger_event(text, jsonb)",
        "ledger_draw(text, text, text, bigint, timestamptz, boolean)",
        "ledger_fill(text, text, bigint, bigint)",
        "ledger_expiry(text, timestamptz)",
        "ledger_lock(text, text, boolean)",
        "ledger_store_key(text, int, jsonb)",
        "ledger_claim_key(text, bytea)",
        "ledger_txn_json(text)",
        "ledger_ts(timestamptz)",
        "ledger_id(text)",
    ):
        op.execute(f"DROP FUNCTION {name}")
    op.execute("DELETE FROM point_types WHERE key = 'points'")
