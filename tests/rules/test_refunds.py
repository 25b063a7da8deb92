"""order.refunded takes back what the order earned, in proportion, and never twice."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import TenantClient
from tests.ledger.invariants import assert_ledger_invariants

Tenants = tuple[TenantClient, TenantClient]


async def _event(t: TenantClient, kind: str, data: dict[str, Any], member: str = "buyer") -> Any:
    return await t.http.post(
        "/v1/events",
        json={
            "type": kind,
            "member_external_id": member,
            "occurred_at": "2026-05-01T10:00:00Z",
            "data": data,
        },
    )


async def _available(t: TenantClient) -> int:
    member = (await t.http.get("/v1/members", params={"external_id": "buyer"})).json()["data"][0][
        "id"
    ]
    body = (await t.http.get(f"/v1/members/{member}/balance")).json()
    return int(body["balances"][0]["available"])


async def _setup(t: TenantClient) -> None:
    await t.http.post("/v1/members", json={"external_id": "buyer"})
    await t.http.post(
        "/v1/rules",
        json={
            "name": "per CNY",
            "trigger": "order.paid",
            "effect": {"kind": "per_unit", "field": "total", "points_per_unit": "1"},
        },
    )
    await t.http.post(
        "/v1/rules",
        json={"name": "bonus", "trigger": "order.paid", "effect": {"kind": "fixed", "points": 10}},
    )


async def test_partial_then_full_refund(tenants: Tenants, engine: AsyncEngine) -> None:
    a, _ = tenants
    await _setup(a)
    paid = await _event(a, "order.paid", {"order_id": "A1", "total": 100.0})
    assert paid.status_code == 201 and await _available(a) == 110
    partial = await _event(
        a, "order.refunded", {"order_id": "A1", "refund_id": "r1", "refund_total": 30.0}
    )
    assert partial.status_code == 201, partial.text
    assert sorted(t["points"] for t in partial.json()["transactions"]) == [-30, -3]
    assert await _available(a) == 77
    replay = await _event(
        a, "order.refunded", {"order_id": "A1", "refund_id": "r1", "refund_total": 30.0}
    )
    assert replay.status_code == 200 and await _available(a) == 77
    by_lines = await _event(
        a, "order.refunded", {"order_id": "A1", "refund_id": "r2", "lines": [{"amount": 20}]}
    )
    assert sorted(t["points"] for t in by_lines.json()["transactions"]) == [-20, -2]
    rest = await _event(a, "order.refunded", {"order_id": "A1", "refund_id": "r3", "full": True})
    assert sorted(t["points"] for t in rest.json()["transactions"]) == [-50, -5]
    assert await _available(a) == 0
    nothing_left = await _event(
        a, "order.refunded", {"order_id": "A1", "refund_id": "r4", "full": True}
    )
    assert nothing_left.json()["transactions"] == []
    await assert_ledger_invariants(engine, a.schema)


async def test_refund_of_spent_points_without_debt_is_409(
    tenants: Tenants, engine: AsyncEngine
) -> None:
    a, _ = tenants
    await _setup(a)
    await _event(a, "order.paid", {"order_id": "B1", "total": 50.0})
    member = (await a.http.get("/v1/members", params={"external_id": "buyer"})).json()["data"][0][
        "id"
    ]
    await a.http.post(
        "/v1/points/spend", json={"member_id": member, "points": 55, "reason": "coupon"}
    )
    refused = await _event(a, "order.refunded", {"order_id": "B1", "refund_id": "x"})
    assert refused.status_code == 409 and refused.json()["code"] == "points_already_spent"
    await assert_ledger_invariants(engine, a.schema)


async def test_refund_of_unknown_order_is_404(tenants: Tenants) -> None:
    a, _ = tenants
    await _setup(a)
    missing = await _event(a, "order.refunded", {"order_id": "nope", "refund_id": "x"})
    assert missing.status_code == 404
    bad = await _event(a, "order.refunded", {"refund_id": "x"})
    assert bad.status_code == 422
