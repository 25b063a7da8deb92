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
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.loadgen import post_request, run_load
from pointsmall.auth.schemas import ApiKeyCreate
from pointsmall.auth.services import issue
from pointsmall.cli import _migrate
from pointsmall.embedded import ensure_services
from pointsmall.migrations import tenant_migrations
from pointsmall.settings import Settings
from pointsmall.tenancy.services import provision
from pointsmall_tenants import create_pooled_engine

HERE = Path(__file__).parent
MEMBERS = int(os.environ.get("BENCH_MEMBERS", "1000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
LOTS = int(os.environ.get("BENCH_LOTS", "1000000"))
CONNECTIONS = 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _tenant(engine: AsyncEngine, name: str) -> tuple[str, str]:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        tenant = await provision(session, tenant_migrations(), name=name, slug=None)
        key = await issue(session, tenant.id, ApiKeyCreate(name="bench"))
    return "t_" + tenant.id.split("_", 1)[1], key.secret


async def _seed_members(engine: AsyncEngine, schema: str, count: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f'INSERT INTO "{schema}".members (id, external_id, attributes, status) '
                "SELECT 'mem_b' || lpad(g::text, 6, '0'), 'b' || g, '{}', 'active' "
                "FROM generate_series(1, :n) g"
            ),
            {"n": count},
        )
        await conn.execute(
            text(
                f'INSERT INTO "{schema}".balances (member_id, point_type) '
                f"SELECT id, 'points' FROM \"{schema}\".members"
            )
        )


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
    schema, _ = await _tenant(engine, "Sweep bench")
    members = max(1, lots // 100)
    await _seed_members(engine, schema, members)
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
    base = ensure_services(Settings.from_env())
    name = f"pointsmall_bench_{uuid.uuid4().hex[:8]}"
    admin = create_pooled_engine(base.async_database_url, isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base.async_database_url).set(database=name)
    async_url = url.render_as_string(hide_password=False)
    libpq_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    engine = create_pooled_engine(async_url, pool_size=4)
    server = None
    try:
        await _migrate(Settings(database_url=async_url, redis_url=base.redis_url), 4)
        schema, key = await _tenant(engine, "Ledger bench")
        await _seed_members(engine, schema, MEMBERS)

        port = _free_port()
        env = os.environ | {
            "DATABASE_URL": libpq_url,
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": "1",
            "DB_POOL_SIZE": "32",
            "DB_MAX_OVERFLOW": "0",
        }
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pointsmall",
            "serve",
            env=env,
            start_new_session=True,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        auth = {"Authorization": f"Bearer {key}"}
        host = f"127.0.0.1:{port}"

        def earn(n: int) -> bytes:
            member = f"mem_b{(n * 7919) % MEMBERS + 1:06d}"
            body = msgspec.json.encode({"member_id": member, "points": 10, "reason": "bench"})
            return post_request(host, "/v1/points/earn", body, auth)

        a = await run_load("127.0.0.1", port, earn, connections=CONNECTIONS, seconds=SECONDS)
        assert set(a.statuses) == {201}, a.statuses
        print(
            f"(a) HTTP earn: {a.rps:.0f}/s, p50 {a.p50:.2f} ms, p99 {a.percentile(0.99):.2f} ms",
            flush=True,
        )

        def earn_keyed(n: int) -> bytes:
            member = f"mem_b{(n * 7919) % MEMBERS + 1:06d}"
            body = msgspec.json.encode({"member_id": member, "points": 10, "reason": "bench"})
            return post_request(
                host,
                "/v1/points/earn",
                body,
                auth | {"Idempotency-Key": f"k{n}-{uuid.uuid4().hex}"},
            )

        keyed = await run_load(
            "127.0.0.1", port, earn_keyed, connections=CONNECTIONS, seconds=SECONDS
        )
        print(f"(a+) HTTP earn with Idempotency-Key: {keyed.rps:.0f}/s", flush=True)

        hot = "mem_b000001"
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

        os.killpg(server.pid, signal.SIGINT)
        await server.wait()
        server = None

        b = _pgbench(libpq_url, schema, "ledger_statements.sql", SECONDS)
        print(f"(b) pgbench, earn as 8 plain statements: {b:.0f} tps", flush=True)
        c = _pgbench(libpq_url, schema, "ledger_function.sql", SECONDS)
        print(f"(c') pgbench, earn as one function call: {c:.0f} tps", flush=True)
        sweep = await _sweep(engine, LOTS)

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
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGINT)
            await server.wait()
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())
