"""make bench-rules: events per second through POST /v1/events with 50 active rules of
which 10 match the trigger, and the evaluator alone (events per second on one core against
those 10 rules). The last line printed is one JSON object with the figures."""

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import msgspec

from bench.harness import api_server, bench_database, new_tenant, seed_members
from bench.loadgen import post_request, run_load
from pointsmall.rules import engine, schemas

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

    async with bench_database(pool_size=2) as db:
        _, schema, key = await new_tenant(db.engine, "Rules bench")
        await seed_members(db.engine, schema, MEMBERS)
        async with api_server(db, DB_POOL_SIZE="32", DB_MAX_OVERFLOW="0") as port:
            auth = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=auth) as http:
                for rule in rules:
                    (await http.post("/v1/rules", json=rule)).raise_for_status()
            host = f"127.0.0.1:{port}"
            now = datetime.now(UTC).isoformat()

            def event(n: int) -> bytes:
                body = msgspec.json.encode(
                    {
                        "type": "order.paid",
                        "member_id": f"mem_b{(n * 7919) % MEMBERS + 1:025d}",
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


if __name__ == "__main__":
    asyncio.run(main())
