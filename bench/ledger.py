"""make bench-ledger: the ledger's write path, through HTTP and against its ceilings.

(a) earns/s through HTTP (granian, one process) at 32 connections, load generated on the
    same machine, with p50/p99; (b) pgbench sending the earn's 8 statements one by one;
    (c) a/b; (c') pgbench calling the single-round-trip SQL function, and a/c';
(d) spends/s on one hot member through HTTP; (e) the expiry sweep over 1,000,000 lots of
which half expire. Runs in a database of its own, dropped at the end; the last line
printed is one JSON object with the figures.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness import api_server, bench_database, new_tenant, seed_members
from bench.loadgen import LoadResult, post_request, run_load

HERE = Path(__file__).parent
MEMBERS = int(os.environ.get("BENCH_MEMBERS", "1000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
LOTS = int(os.environ.get("BENCH_LOTS", "1000000"))
CONNECTIONS = 32


def _pgbench(url: str, schema: str, script: str, seconds: float) -> float:
    import pgserver

    binary = shutil.which("pgbench") or str(
        Path(pgserver.__path__[0]) / "pginstall" / "bin" / "pgbench"
    )
    env = os.environ | {"PGOPTIONS": f"-c search_path={schema}"}
    out = subprocess.run(
        [
            binary,
            "-n",
            "-c",
            str(CONNECTIONS),
            "-j",
            "2",
            "-T",
            str(int(seconds)),
            "-f",
            str(HERE / script),
            "-D",
            f"members={MEMBERS}",
            url,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if match is None:
        raise RuntimeError(out)
    return float(match.group(1))


async def _sweep(engine: AsyncEngine, lots: int) -> float:
    _, schema, _ = await new_tenant(engine, "Sweep bench")
    members = max(1, lots // 100)
    await seed_members(engine, schema, members)
    async with engine.begin() as conn:
        s = f'"{schema}"'
        await conn.execute(
            text(
                f"INSERT INTO {s}.ledger_transactions (id, kind, member_id, point_type, points, created_at) "
                f"SELECT 'txn_seed' || id, 'earn', id, 'points', 1000, now() FROM {s}.members"
            )
        )
        await conn.execute(
            text(
                f"INSERT INTO {s}.lots (transaction_id, member_id, point_type, amount, remaining, debt_paid,"
                " pending, available_at, expires_at) "
                f"SELECT 'txn_seed' || m.id, m.id, 'points', 10, 10, 0, false, now() - interval '60 days',"
                " CASE WHEN g % 2 = 0 THEN now() - interval '1 day' ELSE now() + interval '30 days' END "
                f"FROM {s}.members m CROSS JOIN generate_series(1, :per) g"
            ),
            {"per": lots // members},
        )
        await conn.execute(
            text(f"UPDATE {s}.balances SET available = 1000, lifetime_earned = 1000")
        )
        await conn.execute(text(f"ANALYZE {s}.lots"))
    async with engine.connect() as conn:
        started = time.perf_counter()
        async with conn.begin():
            expired = (
                await conn.execute(text(f'SELECT "{schema}".ledger_expire(now())'))
            ).scalar_one()
        elapsed = time.perf_counter() - started
    print(f"(e) sweep: {expired} of {lots} lots expired in {elapsed:.2f} s", flush=True)
    return elapsed


async def main() -> None:
    async with bench_database() as db:
        _, schema, key = await new_tenant(db.engine, "Ledger bench")
        await seed_members(db.engine, schema, MEMBERS)
        async with api_server(db, DB_POOL_SIZE="32", DB_MAX_OVERFLOW="0") as port:
            a, keyed, d = await _http_figures(port, key)
        b = _pgbench(db.libpq_url, schema, "ledger_statements.sql", SECONDS)
        print(f"(b) pgbench, earn as 8 plain statements: {b:.0f} tps", flush=True)
        c = _pgbench(db.libpq_url, schema, "ledger_function.sql", SECONDS)
        print(f"(c') pgbench, earn as one function call: {c:.0f} tps", flush=True)
        sweep = await _sweep(db.engine, LOTS)
        print(
            json.dumps(
                {
                    "earn_rps": round(a.rps),
                    "earn_p50_ms": round(a.p50, 2),
                    "earn_p99_ms": round(a.percentile(0.99), 2),
                    "earn_keyed_rps": round(keyed.rps),
                    "pgbench_statements_tps": round(b),
                    "ratio": round(a.rps / b, 3),
                    "pgbench_function_tps": round(c),
                    "ratio_function": round(a.rps / c, 3),
                    "hot_member_spend_rps": round(d.rps),
                    "sweep_1m_lots_s": round(sweep, 2),
                }
            )
        )


async def _http_figures(port: int, key: str) -> tuple[LoadResult, LoadResult, LoadResult]:
    """(a) earns, (a+) earns with Idempotency-Key, (d) spends on one hot member."""
    auth = {"Authorization": f"Bearer {key}"}
    host = f"127.0.0.1:{port}"

    def earn(n: int, keyed: bool = False) -> bytes:
        member = f"mem_b{(n * 7919) % MEMBERS + 1:025d}"
        body = msgspec.json.encode({"member_id": member, "points": 10, "reason": "bench"})
        headers = auth | ({"Idempotency-Key": f"k{n}-{uuid.uuid4().hex}"} if keyed else {})
        return post_request(host, "/v1/points/earn", body, headers)

    a = await run_load("127.0.0.1", port, earn, connections=CONNECTIONS, seconds=SECONDS)
    assert set(a.statuses) == {201}, a.statuses
    print(
        f"(a) HTTP earn: {a.rps:.0f}/s, p50 {a.p50:.2f} ms, p99 {a.percentile(0.99):.2f} ms",
        flush=True,
    )
    keyed = await run_load(
        "127.0.0.1", port, lambda n: earn(n, True), connections=CONNECTIONS, seconds=SECONDS
    )
    print(f"(a+) HTTP earn with Idempotency-Key: {keyed.rps:.0f}/s", flush=True)
    hot = f"mem_b{1:025d}"
    seed = msgspec.json.encode({"member_id": hot, "points": 10**9, "reason": "seed"})
    await run_load(
        "127.0.0.1",
        port,
        lambda n: post_request(host, "/v1/points/earn", seed, auth),
        connections=1,
        seconds=0.01,
        warmup=0,
    )
    spend_body = msgspec.json.encode({"member_id": hot, "points": 1, "reason": "bench"})
    d = await run_load(
        "127.0.0.1",
        port,
        lambda n: post_request(host, "/v1/points/spend", spend_body, auth),
        connections=CONNECTIONS,
        seconds=SECONDS,
    )
    assert set(d.statuses) == {201}, d.statuses
    print(
        f"(d) HTTP spends on one hot member: {d.rps:.0f}/s, p99 {d.percentile(0.99):.2f} ms",
        flush=True,
    )
    return a, keyed, d


if __name__ == "__main__":
    asyncio.run(main())
