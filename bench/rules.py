"""make bench-rules: events per second through POST /v1/events with 50 active rules of
which 10 match the trigger, and the evaluator alone (events per second on one core against
those 10 rules). The last line printed is one JSON object with the figures."""

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import msgspec
from sqlalchemy import make_url, text

from bench.ledger import _free_port, _seed_members, _tenant
from bench.loadgen import post_request, run_load
from pointsmall.cli import _migrate
from pointsmall.embedded import ensure_services
from pointsmall.rules import engine, schemas
from pointsmall.settings import Settings
from pointsmall_tenants import create_pooled_engine

SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
MEMBERS = 1000
TRIGGERS = [
    "order.paid",
    "member.signed_up",
    "review.created",
    "referral.completed",
    "custom.visit",
]


def _rule(n: int, trigger: str) -> dict[str, object]:
    conditions = [
        "event.data.total > 10.0",
        'event.data.category == "electronics" || event.data.category == "books"',
        "member.lifetime_points >= 0 && event.data.total < 100000.0",
        '"vip" in member.attributes ? member.attributes.vip == true : true',
        "size(event.data.items) > 0",
    ]
    effect = (
        {"kind": "per_unit", "field": "total", "points_per_unit": "0.5", "rounding": "floor"}
        if n % 3 == 0
        else {"kind": "fixed", "points": 5 + n}
    )
    return {
        "name": f"rule {n}",
        "trigger": trigger,
        "condition": conditions[n % len(conditions)],
        "effect": effect,
        "priority": n % 7,
    }


def _evaluator_alone(rules: list[dict[str, object]], seconds: float = 5.0) -> float:
    compiled = []
    for n, raw in enumerate(r for r in rules if r["trigger"] == "order.paid"):
        data = msgspec.convert(raw, schemas.RuleCreate)
        compiled.append(
            engine.CompiledRule(
                f"rule_{n}",
                f"rule_{n}.v1",
                data.name,
                engine.compile_condition(data.condition),
                data.effect,
                data.point_type,
                data.caps,
                data.schedule,
                data.priority,
                data.stacking,
            )
        )
    member = {
        "id": "mem_x",
        "external_id": "x",
        "email": None,
        "name": None,
        "tier": None,
        "attributes": {"vip": True},
        "lifetime_points": 1200,
        "signup_date": datetime.now(UTC),
        "streak": 0,
    }
    zone = ZoneInfo("Asia/Shanghai")
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            event = {
                "type": "order.paid",
                "occurred_at": datetime.now(UTC),
                "data": {
                    "order_id": "o",
                    "total": 123.45,
                    "category": "electronics",
                    "items": [{"sku": "a"}],
                },
            }
            verdicts = engine.evaluate(
                compiled, event=event, member=member, now=datetime.now(UTC), zone=zone, usage={}
            )
        done += 200
    assert sum(v.fired for _, v in verdicts) == len(compiled) == 10
    return done / (time.perf_counter() - started)


async def main() -> None:
    rules = [_rule(n, TRIGGERS[0] if n < 10 else TRIGGERS[1 + n % 4]) for n in range(50)]
    alone = _evaluator_alone(rules)
    print(f"evaluator alone, 10 matching rules: {alone:.0f} events/s on one core", flush=True)

    base = ensure_services(Settings.from_env())
    name = f"pointsmall_bench_{uuid.uuid4().hex[:8]}"
    admin = create_pooled_engine(base.async_database_url, isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base.async_database_url).set(database=name)
    async_url = url.render_as_string(hide_password=False)
    libpq_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    db = create_pooled_engine(async_url, pool_size=2)
    server = None
    try:
        await _migrate(Settings(database_url=async_url, redis_url=base.redis_url), 4)
        schema, key = await _tenant(db, "Rules bench")
        await _seed_members(db, schema, MEMBERS)
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
        auth = {"Authorization": f"Bearer {key}"}
        transport = httpx.AsyncHTTPTransport(retries=20)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=auth, transport=transport
        ) as http:
            for rule in rules:
                (await http.post("/v1/rules", json=rule)).raise_for_status()
        host = f"127.0.0.1:{port}"
        now = datetime.now(UTC).isoformat()

        def event(n: int) -> bytes:
            body = msgspec.json.encode(
                {
                    "type": "order.paid",
                    "member_id": f"mem_b{(n * 7919) % MEMBERS + 1:06d}",
                    "occurred_at": now,
                    "data": {
                        "order_id": f"o{n}-{uuid.uuid4().hex[:8]}",
                        "total": 123.45,
                        "category": "electronics",
                        "items": [{"sku": "a"}],
                    },
                }
            )
            return post_request(host, "/v1/events", body, auth)

        result = await run_load("127.0.0.1", port, event, connections=32, seconds=SECONDS)
        assert set(result.statuses) == {201}, result.statuses
        print(
            f"POST /v1/events (10 of 50 rules match, 10 credits each): {result.rps:.0f}/s, "
            f"p50 {result.p50:.1f} ms, p99 {result.percentile(0.99):.1f} ms",
            flush=True,
        )
        print(
            json.dumps(
                {
                    "evaluator_events_per_s_one_core": round(alone),
                    "events_rps": round(result.rps),
                    "events_p50_ms": round(result.p50, 2),
                    "events_p99_ms": round(result.percentile(0.99), 2),
                    "rules_active": 50,
                    "rules_matching": 10,
                }
            )
        )
    finally:
        if server is not None and server.returncode is None:
            os.killpg(server.pid, signal.SIGINT)
            await server.wait()
        await db.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())
