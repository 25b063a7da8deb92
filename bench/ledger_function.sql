-- The same earn as one call of the ledger's SQL function: one round trip (pgbench -f).
\set m random(1, :members)
SELECT ledger_credit('earn', 'mem_b' || lpad(:m::text, 25, '0'), 'points', 10, 'bench', NULL, 'pgbench', NULL, NULL, NULL, NULL);
