"""Issue 10's mall defects, each through the API: the payment id in `order.created`, the
points share on points-only prices, unknown tiers, a refunded order's virtual codes, and
one status and one code per refusal."""

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.payments.contracts import PaymentIntent, PaymentRequest
from pointsmall.plugins import hookimpl, plugin_manager
from tests.conftest import TenantClient
from tests.mall.helpers import available, member, product

Tenants = tuple[TenantClient, TenantClient]


async def _order(t: TenantClient, member_id: str, *lines: str, **payment: Any) -> Any:
    body: dict[str, Any] = {"member_id": member_id, "lines": [{"product_id": p} for p in lines]}
    if payment:
        body["payment"] = payment
    return await t.http.post("/v1/orders", json=body)


async def _events(engine: AsyncEngine, t: TenantClient, order_id: str) -> list[tuple[str, Any]]:
    """The `order.*` events written for one order, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT type, payload FROM {t.schema}.outbox WHERE type LIKE 'order.%'"
                " AND payload ->> 'id' = :id ORDER BY id"
            ),
            {"id": order_id},
        )
        return [(row.type, row.payload) for row in rows]


class _BrokenProvider:
    name = "brokenpay"

    @hookimpl
    def pointsmall_payment_providers(self) -> list[str]:
        return [self.name]

    @hookimpl
    def pointsmall_create_payment(
        self, provider: str, request: PaymentRequest
    ) -> PaymentIntent | None:
        if provider != self.name:
            return None
        raise ConnectionError("gateway timeout")


@pytest.fixture
def brokenpay() -> Any:
    plugin = _BrokenProvider()
    plugin_manager().register(plugin)
    yield plugin
    plugin_manager().unregister(plugin)


# --- 10: order.created carries the payment id confirm-payment needs ----------------------


async def test_order_created_carries_the_payment_id(
    tenants: Tenants, engine: AsyncEngine, brokenpay: _BrokenProvider
) -> None:
    a, _ = tenants
    buyer = await member(a, "pay-id", 1000)
    item = await product(a, points_price=100, cash_price="2.00")
    placed = (await _order(a, buyer, item)).json()
    payment_id = placed["payment"]["payment_id"]
    [(kind, created)] = await _events(engine, a, placed["id"])
    assert kind == "order.created" and created["status"] == "pending_payment"
    assert created["payment"]["payment_id"] == payment_id
    # What the event says is enough to confirm the payment.
    confirmed = await a.http.post(
        f"/v1/orders/{placed['id']}/confirm-payment",
        json={"payment_id": created["payment"]["payment_id"]},
    )
    assert confirmed.status_code == 200, confirmed.text
    got = (await a.http.get(f"/v1/orders/{placed['id']}")).json()
    assert got["payment"]["payment_id"] == payment_id
    # A points-only order is announced at once, still exactly once.
    free = (await _order(a, buyer, await product(a, points_price=10))).json()
    assert [k for k, _ in await _events(engine, a, free["id"])] == ["order.created"]
    # An order whose payment could not be made was never announced, nor is its cancellation.
    failed = await _order(a, buyer, item, provider="brokenpay")
    assert failed.status_code == 502
    async with engine.connect() as conn:
        unannounced = await conn.scalar(
            text(
                f"SELECT count(*) FROM {a.schema}.outbox o JOIN {a.schema}.orders r"
                " ON r.id = o.payload ->> 'id' WHERE o.type LIKE 'order.%'"
                " AND r.status_reason = 'payment_failed'"
            )
        )
    assert unannounced == 0


# --- 11: the points share bounds points paid toward cash-priced goods only ----------------


async def test_points_share_leaves_points_only_prices_in_points(tenants: Tenants) -> None:
    a, _ = tenants
    await a.http.patch("/v1/settings", json={"point_value": "0.01", "max_points_share": "0.5"})
    buyer = await member(a, "share", 10_000)
    mug = await product(a, points_price=300)
    order = (await _order(a, buyer, mug)).json()
    assert (order["status"], order["points"], order["cash"]) == ("confirmed", 300, None)
    coupon = await product(
        a, kind="coupon", points_price=100, coupon_value="5", coupon_valid_days=10
    )
    bought = await _order(a, buyer, coupon, points=100)
    assert bought.status_code == 201, bought.text
    assert len(bought.json()["coupons"]) == 1
    # Beside a cash-priced product the share bounds only that product's part: 1,000 points +
    # 9.90 is worth 19.90, of which at most 9.95 (995 points) may be paid in points.
    combo = await product(a, points_price=1000, cash_price="9.90")
    mixed = (await _order(a, buyer, mug, combo)).json()
    assert (mixed["points"], mixed["cash"], mixed["points_total"]) == (1295, "9.95", 1300)
    over = await _order(a, buyer, mug, combo, points=1300)
    assert over.status_code == 409 and over.json()["code"] == "points_share_exceeded"
    assert "1295" in over.json()["detail"]
    assert await available(a, buyer) == 10_000 - 300 - 100 - 1295


# --- 12: a product's tiers must exist ------------------------------------------------------


async def test_unknown_tiers_are_refused(tenants: Tenants) -> None:
    a, _ = tenants
    tier = {"key": "gold", "name": "Gold", "threshold": 300, "window_days": 30}
    assert (await a.http.post("/v1/tiers", json=tier)).status_code == 201
    unknown = await a.http.post(
        "/v1/products",
        json={
            "name": "Lounge",
            "kind": "service",
            "points_price": 10,
            "tiers": ["gold", "nosuchtier", "platinum"],
        },
    )
    assert unknown.status_code == 404, unknown.text  # like an order naming an unknown product
    assert unknown.json()["code"] == "unknown_tier"
    assert unknown.json()["errors"][0]["field"] == "tiers"
    assert "nosuchtier" in unknown.json()["detail"] and "platinum" in unknown.json()["detail"]
    assert "gold" not in unknown.json()["errors"][0]["message"]
    gold = await product(a, tiers=["gold"])
    patched = await a.http.patch(f"/v1/products/{gold}", json={"tiers": ["nosuchtier"]})
    assert patched.status_code == 404 and patched.json()["errors"][0]["field"] == "tiers"
    assert "nosuchtier" in patched.json()["detail"]
    assert (await a.http.get(f"/v1/products/{gold}")).json()["tiers"] == ["gold"]
    opened = await a.http.patch(f"/v1/products/{gold}", json={"tiers": None})
    assert opened.status_code == 200 and opened.json()["tiers"] is None


# --- 13: a refunded virtual order says what became of its codes ---------------------------


async def test_refunded_virtual_order_lists_its_codes_as_void(tenants: Tenants) -> None:
    a, _ = tenants
    buyer = await member(a, "codes", 1000)
    item = await product(a, kind="virtual", points_price=100)
    await a.http.post(f"/v1/products/{item}/codes", json={"codes": ["GIFT-1", "GIFT-2"]})
    order = (await _order(a, buyer, item)).json()
    assert order["codes"] == ["GIFT-1"]
    delivered = {"code": "GIFT-1", "product_id": item, "status": "delivered"}
    assert order["virtual_codes"] == [delivered]
    refunded = await a.http.post(f"/v1/orders/{order['id']}/refund", json={"restock": True})
    assert refunded.status_code == 200, refunded.text
    # `codes` holds what the member may use: nothing now; the void code is listed with why.
    assert refunded.json()["codes"] == []
    assert refunded.json()["virtual_codes"] == [delivered | {"status": "void"}]
    assert (await a.http.get(f"/v1/orders/{order['id']}")).json()["virtual_codes"] == [
        delivered | {"status": "void"}
    ]
    # A shown code never goes back to the pool: the stock counts only GIFT-2.
    assert (await a.http.get(f"/v1/products/{item}")).json()["stock"] == 1
    # An unpaid order shows no code at all, not even as reserved.
    paid_part = await product(a, kind="virtual", points_price=100, cash_price="1.00")
    await a.http.post(f"/v1/products/{paid_part}/codes", json={"codes": ["P-1"]})
    pending = (await _order(a, buyer, paid_part)).json()
    assert pending["codes"] == [] and pending["virtual_codes"] == []


# --- 15: one status and one code per condition; every 422 explains itself -----------------


async def test_refusals_have_one_status_and_code_each(tenants: Tenants) -> None:
    a, _ = tenants
    buyer = await member(a, "codes15", 10_000)
    archived = await product(a)
    await a.http.patch(f"/v1/products/{archived}", json={"status": "archived"})
    assert (await a.http.get(f"/v1/products/{archived}")).status_code == 200
    gone = await _order(a, buyer, archived)
    assert gone.status_code == 409 and gone.json()["code"] == "product_unavailable"
    assert archived in gone.json()["detail"]
    draft = await product(a, status="draft")
    assert (await _order(a, buyer, draft)).json()["code"] == "product_unavailable"
    missing = await _order(a, buyer, "prod_01jz0000000000000000000000")
    assert missing.status_code == 404
    tier = {"key": "gold", "name": "Gold", "threshold": 300, "window_days": 30}
    await a.http.post("/v1/tiers", json=tier)
    restricted = await _order(a, buyer, await product(a, tiers=["gold"]))
    assert restricted.status_code == 409 and restricted.json()["code"] == "tier_restricted"
    coupon = await product(
        a, kind="coupon", points_price=100, coupon_value="5", coupon_valid_days=10
    )
    order = (await _order(a, buyer, coupon)).json()
    code = order["coupons"][0]
    await a.http.post(f"/v1/coupons/{code}/redeem")
    again = await a.http.post(f"/v1/coupons/{code}/redeem")
    refund = await a.http.post(f"/v1/orders/{order['id']}/refund")
    cancel = await a.http.post(f"/v1/orders/{order['id']}/cancel")
    assert [r.status_code for r in (again, refund, cancel)] == [409, 409, 409]
    assert {r.json()["code"] for r in (again, refund, cancel)} == {"coupon_redeemed"}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (422, {"name": "x", "kind": "physical", "points_price": 1, "per_period_limit": 1}),
        (422, {"name": "x", "kind": "physical", "points_price": 1, "limit_period": "day"}),
        (422, {"name": "x", "kind": "coupon", "points_price": 1}),
        (422, {"name": "x", "kind": "virtual", "points_price": 1, "stock": 1}),
        (404, {"name": "x", "kind": "physical", "points_price": 1, "tiers": ["nosuchtier"]}),
        (
            409,
            {
                "name": "x",
                "kind": "physical",
                "points_price": 1,
                "cash_price": "1",
                "currency": "EUR",
            },
        ),
        (422, {"name": "x", "kind": "physical", "points_price": 0}),
    ],
)
async def test_every_catalog_refusal_has_a_detail(
    tenants: Tenants, status: int, body: dict[str, Any]
) -> None:
    a, _ = tenants
    refused = await a.http.post("/v1/products", json=body)
    assert refused.status_code == status, refused.text
    assert refused.json().get("detail"), refused.json()
