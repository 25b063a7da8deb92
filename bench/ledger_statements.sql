-- The ledger's earn write set as plain statements, one round trip each (pgbench -f).
-- Variables: :members (how many bench members). Run with search_path set to the tenant schema.
\set m random(1, :members)
\set txn random(1, 999999999999999)
BEGIN;
SELECT available FROM balances WHERE member_id = 'mem_b' || lpad(:m::text, 25, '0') AND point_type = 'points' FOR UPDATE;
INSERT INTO ledger_transactions (id, kind, member_id, point_type, points, reason, granted_by, created_at) VALUES ('txn_' || :txn || '_' || :client_id, 'earn', 'mem_b' || lpad(:m::text, 25, '0'), 'points', 10, 'bench', 'pgbench', now());
INSERT INTO postings (transaction_id, account, member_id, point_type, amount) VALUES ('txn_' || :txn || '_' || :client_id, 'issuance', NULL, 'points', -10), ('txn_' || :txn || '_' || :client_id, 'wallet', 'mem_b' || lpad(:m::text, 25, '0'), 'points', 10);
INSERT INTO lots (transaction_id, member_id, point_type, amount, remaining, debt_paid, pending, available_at, expires_at, granted_by) VALUES ('txn_' || :txn || '_' || :client_id, 'mem_b' || lpad(:m::text, 25, '0'), 'points', 10, 10, 0, false, now(), NULL, 'pgbench');
UPDATE balances SET available = available + 10, lifetime_earned = lifetime_earned + 10, version = version + 1 WHERE member_id = 'mem_b' || lpad(:m::text, 25, '0') AND point_type = 'points';
INSERT INTO outbox (event_id, type, payload) VALUES ('evt_' || :txn || '_' || :client_id, 'points.earned', jsonb_build_object('id', 'txn_' || :txn || '_' || :client_id));
COMMIT;
