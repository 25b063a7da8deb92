"""Tiers with a controlled clock: upgrade at once, review at the window's end, retention,
and the tier's earn multiplier."""

from datetime import UTC, datetime, timedelta

import asyncpg

from pointsmall.rules.services import review_tiers
from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]
DAY0 = datetime(2026, 1, 10, 12, tzinfo=UTC)


async def _visit(t: TenantClient, member: str, day: int) -> int:
    response = await t.http.post(
        "/v1/events",
        json={
            "type": "custom.visit",
            "member_id": member,
            "occurred_at": (DAY0 + timedelta(days=day)).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    return sum(tr["points"] for tr in response.json()["transactions"])


async def _tier(t: TenantClient, member: str) -> str | None:
    tier: str | None = (await t.http.get(f"/v1/members/{member}/balance")).json()["tier"]
    return tier


async def test_upgrade_review_retention_and_multiplier(
    tenants: Tenants, hot_pool: asyncpg.Pool
) -> None:
    a, _ = tenants
    silver = {
        "key": "silver",
        "name": "Silver",
        "threshold": 100,
        "window_days": 30,
        "retention_days": 10,
    }
    gold = {
        "key": "gold",
        "name": "Gold",
        "threshold": 300,
        "window_days": 30,
        "earn_multiplier": "2",
    }
    for tier in (silver, gold):
        assert (await a.http.post("/v1/tiers", json=tier)).status_code == 201
    assert [t["key"] for t in (await a.http.get("/v1/tiers")).json()["data"]] == [
        "silver",
        "gold",
    ]
    await a.http.post(
        "/v1/rules",
        json={
            "name": "visit",
            "trigger": "custom.visit",
            "effect": {"kind": "fixed", "points": 60},
        },
    )
    member = (await a.http.post("/v1/members", json={"external_id": "t"})).json()["id"]

    assert await _visit(a, member, 0) == 60
    assert await _tier(a, member) is None
    await _visit(a, member, 1)
    assert await _tier(a, member) == "silver"  # 120 >= 100: at once

    # Day 31: the window (day 1, day 31] holds 60 points: not requalified, but retained.
    assert await review_tiers(hot_pool, a.schema, DAY0 + timedelta(days=31, hours=1)) == 0
    assert await _tier(a, member) == "silver"
    # Day 41: retention over; the member qualifies for nothing now.
    assert await review_tiers(hot_pool, a.schema, DAY0 + timedelta(days=41, hours=1)) == 1
    assert await _tier(a, member) is None

    # Back up, then to gold, where rules grant double.
    for day in range(50, 55):
        await _visit(a, member, day)
    assert await _tier(a, member) == "gold"  # 5 x 60 = 300
    assert await _visit(a, member, 56) == 120
    history = (await a.http.get(f"/v1/members/{member}/tier-history")).json()["data"]
    assert [(h["from_tier"], h["to_tier"]) for h in history] == [  # newest first
        ("silver", "gold"),
        (None, "silver"),
        ("silver", None),
        (None, "silver"),
    ]


async def test_requalifying_keeps_the_tier(tenants: Tenants, hot_pool: asyncpg.Pool) -> None:
    a, _ = tenants
    await a.http.post(
        "/v1/tiers", json={"key": "silver", "name": "Silver", "threshold": 100, "window_days": 30}
    )
    await a.http.post(
        "/v1/rules",
        json={
            "name": "visit",
            "trigger": "custom.visit",
            "effect": {"kind": "fixed", "points": 60},
        },
    )
    member = (await a.http.post("/v1/members", json={"external_id": "k"})).json()["id"]
    for day in (0, 1, 20, 25):
        await _visit(a, member, day)
    assert await review_tiers(hot_pool, a.schema, DAY0 + timedelta(days=31, hours=1)) == 0
    assert await _tier(a, member) == "silver"  # days 20 and 25 requalify it
    bad = await a.http.post("/v1/tiers", json={"key": "silver", "name": "Again", "threshold": 1})
    assert bad.status_code == 409
