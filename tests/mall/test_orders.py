"""The mall (points-only slice): no oversell, no lost points, limits with their own codes."""

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import TenantClient
from tests.ledger.invariants import assert_ledger_invariants
from tests.mall.helpers import available as _available
from tests.mall.helpers import member as _member
from tests.mall.helpers import product as _product

Tenants = tuple[TenantClient, TenantClient]


async def test_oversell_impossible(tenants: Tenants, engine: AsyncEngine) -> None:
    a, _ = tenants
    product = await _product(a, stock=10)
    members = [await _member(a, f"buyer{i}", 100) for i in range(100)]
    responses = await asyncio.gather(
        *(
            a.http.post("/v1/orders", json={"member_id": m, "lines": [{"product_id": product}]})
            for m in members
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 10 and statuses.count(409) == 90, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"out_of_stock"}
    untouched = [m for m, r in zip(members, responses, strict=True) if r.status_code == 409]
    assert [await _available(a, m) for m in untouched] == [100] * 90
    assert (await a.http.get(f"/v1/products/{product}")).json()["stock"] == 0
    await assert_ledger_invariants(engine, a.schema)


async def test_one_member_twenty_concurrent_orders(tenants: Tenants, engine: AsyncEngine) -> None:
    a, _ = tenants
    product = await _product(a)
    member = await _member(a, "solo", 100)
    responses = await asyncio.gather(
        *(
            a.http.post(
                "/v1/orders", json={"member_id": member, "lines": [{"product_id": product}]}
            )
            for _ in range(20)
        )
    )
    assert [r.status_code for r in responses].count(201) == 1
    assert {r.json()["code"] for r in responses if r.status_code != 201} == {"insufficient_points"}
    assert await _available(a, member) == 0
    await assert_ledger_invariants(engine, a.schema)


async def test_cancel_gives_back_points_and_stock_fulfilled_cannot(
    tenants: Tenants, engine: AsyncEngine
) -> None:
    a, _ = tenants
    product = await _product(a, stock=5)
    member = await _member(a, "c", 500)
    order = (
        await a.http.post(
            "/v1/orders",
            json={"member_id": member, "lines": [{"product_id": product, "quantity": 2}]},
        )
    ).json()
    assert order["status"] == "confirmed" and order["points"] == 200
    cancelled = await a.http.post(f"/v1/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert await _available(a, member) == 500
    assert (await a.http.get(f"/v1/products/{product}")).json()["stock"] == 5
    again = await a.http.post(f"/v1/orders/{order['id']}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "invalid_order_state"
    second = (
        await a.http.post(
            "/v1/orders", json={"member_id": member, "lines": [{"product_id": product}]}
        )
    ).json()
    assert (await a.http.post(f"/v1/orders/{second['id']}/fulfill")).json()["status"] == "fulfilled"
    late = await a.http.post(f"/v1/orders/{second['id']}/cancel")
    assert late.status_code == 409 and late.json()["code"] == "invalid_order_state"
    await assert_ledger_invariants(engine, a.schema)


async def test_limits_tiers_and_window_refuse_with_their_own_codes(tenants: Tenants) -> None:
    a, b = tenants
    member = await _member(a, "l", 10_000)
    limited = await _product(a, per_member_limit=2)
    assert (
        await a.http.post(
            "/v1/orders",
            json={"member_id": member, "lines": [{"product_id": limited, "quantity": 2}]},
        )
    ).status_code == 201
    over = await a.http.post(
        "/v1/orders", json={"member_id": member, "lines": [{"product_id": limited}]}
    )
    assert over.status_code == 409 and over.json()["code"] == "limit_exceeded"
    daily = await _product(a, per_period_limit=1, limit_period="day")
    assert (
        await a.http.post(
            "/v1/orders", json={"member_id": member, "lines": [{"product_id": daily}]}
        )
    ).status_code == 201
    twice = await a.http.post(
        "/v1/orders", json={"member_id": member, "lines": [{"product_id": daily}]}
    )
    assert twice.json()["code"] == "period_limit_exceeded"
    tier = {"key": "gold", "name": "Gold", "threshold": 300, "window_days": 30}
    assert (await a.http.post("/v1/tiers", json=tier)).status_code == 201
    gold_only = await _product(a, tiers=["gold"])
    refused = await a.http.post(
        "/v1/orders", json={"member_id": member, "lines": [{"product_id": gold_only}]}
    )
    assert refused.status_code == 409 and refused.json()["code"] == "tier_restricted"
    later = await _product(a, available_from="2099-01-01T00:00:00Z")
    window = await a.http.post(
        "/v1/orders", json={"member_id": member, "lines": [{"product_id": later}]}
    )
    assert window.json()["code"] == "not_available"
    # Another tenant cannot see or order this tenant's products.
    assert (await b.http.get(f"/v1/products/{limited}")).status_code == 404
    assert (
        await a.http.get("/v1/products", params={"available": "true", "max_points": 100})
    ).json()["data"]
    assert await _available(a, member) == 10_000 - 300


async def test_order_idempotency(tenants: Tenants) -> None:
    a, _ = tenants
    product = await _product(a)
    member = await _member(a, "i", 1000)
    body = {"member_id": member, "lines": [{"product_id": product}]}
    first = await a.http.post("/v1/orders", json=body, headers={"Idempotency-Key": "ord-1"})
    again = await a.http.post("/v1/orders", json=body, headers={"Idempotency-Key": "ord-1"})
    assert first.status_code == again.status_code == 201
    assert (
        again.headers["idempotent-replayed"] == "true" and again.json()["id"] == first.json()["id"]
    )
    assert await _available(a, member) == 900
