"""Points plus cash: the split and its rounding rule, payment providers (pluggy), the
payment window, late confirmations, refunds, virtual codes and categories."""

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.jobs import expire_unpaid_orders
from pointsmall.payments.contracts import PaymentIntent, PaymentRequest, RefundRequest
from pointsmall.plugins import hookimpl, plugin_manager
from tests.conftest import TenantClient
from tests.ledger.invariants import assert_ledger_invariants
from tests.mall.helpers import available, member, product

Tenants = tuple[TenantClient, TenantClient]


async def _order(t: TenantClient, member_id: str, product_id: str, **payment: Any) -> Any:
    body: dict[str, Any] = {"member_id": member_id, "lines": [{"product_id": product_id}]}
    if payment:
        body["payment"] = payment
    return await t.http.post("/v1/orders", json=body)


async def _stock(t: TenantClient, product_id: str) -> int:
    return int((await t.http.get(f"/v1/products/{product_id}")).json()["stock"])


async def test_points_plus_cash_waits_for_payment_then_confirms(
    tenants: Tenants, engine: AsyncEngine
) -> None:
    a, _ = tenants
    buyer = await member(a, "pc", 1500)
    item = await product(a, points_price=1000, cash_price="9.90", stock=3)
    response = await _order(a, buyer, item)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "pending_payment"
    assert (order["points"], order["cash"], order["currency"]) == (1000, "9.90", "USD")
    assert order["payment"]["provider"] == "manual" and order["payment"]["status"] == "pending"
    assert order["payment"]["payment_id"].startswith("pay_") and order["payment"]["expires_at"]
    # The points are held: not spendable while the order waits.
    assert await available(a, buyer) == 500
    assert (await _order(a, buyer, item)).json()["code"] == "insufficient_points"
    wrong = await a.http.post(
        f"/v1/orders/{order['id']}/confirm-payment", json={"payment_id": "pay_other"}
    )
    assert wrong.status_code == 409 and wrong.json()["code"] == "payment_mismatch"
    paid = await a.http.post(
        f"/v1/orders/{order['id']}/confirm-payment",
        json={"payment_id": order["payment"]["payment_id"]},
    )
    assert paid.status_code == 200 and paid.json()["status"] == "confirmed"
    assert paid.json()["payment"]["status"] == "succeeded"
    again = await a.http.post(
        f"/v1/orders/{order['id']}/confirm-payment",
        json={"payment_id": order["payment"]["payment_id"]},
    )
    assert again.status_code == 409 and again.json()["code"] == "invalid_order_state"
    assert await _stock(a, item) == 2
    await assert_ledger_invariants(engine, a.schema)


async def test_points_as_part_payment_and_the_rounding_rule(tenants: Tenants) -> None:
    a, _ = tenants
    settings = await a.http.patch(
        "/v1/settings", json={"point_value": "0.01", "max_points_share": "0.5"}
    )
    assert settings.status_code == 200, settings.text
    assert settings.json()["max_points_share"] == "0.5"
    buyer = await member(a, "split", 10_000)
    # 1,000 points (10.00 USD at 100 points = 1 USD) + 1.00 USD: at most 5.50 of the 11.00
    # in points. (The share bounds points toward cash-priced goods only.)
    item = await product(a, points_price=1000, cash_price="1.00")
    default = (await _order(a, buyer, item)).json()
    assert (default["points"], default["cash"], default["points_total"]) == (550, "5.50", 1000)
    over = await _order(a, buyer, item, points=800)
    assert over.status_code == 409 and over.json()["code"] == "points_share_exceeded"
    assert over.json()["errors"][0]["field"] == "payment.points"
    fewer = (
        await _order(a, buyer, item, points=250, cash={"amount": "8.5", "currency": "USD"})
    ).json()
    assert (fewer["points"], fewer["cash"]) == (250, "8.50")
    mismatch = await _order(a, buyer, item, points=250, cash={"amount": "8.49", "currency": "USD"})
    assert mismatch.status_code == 409 and mismatch.json()["code"] == "cash_mismatch"
    assert mismatch.json()["errors"][0]["field"] == "payment.cash"
    # 1,000 points = 3 USD: points turn into cash only in whole cents, never rounded.
    await a.http.patch("/v1/settings", json={"point_value": "0.003", "max_points_share": "1"})
    inexact = await _order(a, buyer, item, points=995)
    assert inexact.status_code == 409 and inexact.json()["code"] == "inexact_split"
    assert "990 or 1000" in inexact.json()["detail"]
    exact = (await _order(a, buyer, item, points=990)).json()
    assert (exact["points"], exact["cash"]) == (990, "1.03")
    bad_share = await a.http.patch("/v1/settings", json={"max_points_share": "1.5"})
    assert bad_share.status_code == 422


async def test_payment_timeout_gives_back_points_and_stock_late_confirmation_refused(
    tenants: Tenants, engine: AsyncEngine, hot_pool: asyncpg.Pool
) -> None:
    a, _ = tenants
    buyer = await member(a, "late", 1000)
    item = await product(a, points_price=400, cash_price="1.00", stock=2)
    swept = (await _order(a, buyer, item)).json()
    unswept = (await _order(a, buyer, item)).json()
    assert await available(a, buyer) == 200 and await _stock(a, item) == 0
    async with engine.begin() as conn:  # the clock moves past the first payment window
        await conn.execute(
            text(
                f"UPDATE {a.schema}.orders SET payment_expires_at = now() - interval '1 second'"
                " WHERE id = :id"
            ),
            {"id": swept["id"]},
        )
    assert await expire_unpaid_orders({"engine": engine, "hot_pool": hot_pool}) == 1
    assert await expire_unpaid_orders({"engine": engine, "hot_pool": hot_pool}) == 0
    gone = (await a.http.get(f"/v1/orders/{swept['id']}")).json()
    assert (gone["status"], gone["status_reason"]) == ("cancelled", "payment_timeout")
    assert await available(a, buyer) == 600 and await _stock(a, item) == 1
    late = await a.http.post(
        f"/v1/orders/{swept['id']}/confirm-payment",
        json={"payment_id": swept["payment"]["payment_id"]},
    )
    assert late.status_code == 409 and late.json()["code"] == "payment_expired"
    # A confirmation that beats the sweep but not the deadline is refused too.
    async with engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE {a.schema}.orders SET payment_expires_at = now() WHERE id = :id"),
            {"id": unswept["id"]},
        )
    beaten = await a.http.post(
        f"/v1/orders/{unswept['id']}/confirm-payment",
        json={"payment_id": unswept["payment"]["payment_id"]},
    )
    assert beaten.status_code == 409 and beaten.json()["code"] == "payment_expired"
    assert await available(a, buyer) == 1000 and await _stock(a, item) == 2
    await assert_ledger_invariants(engine, a.schema)


async def test_refund_after_fulfilment_and_coupons(tenants: Tenants, engine: AsyncEngine) -> None:
    a, _ = tenants
    buyer = await member(a, "refund", 2000)
    item = await product(a, points_price=300, stock=5)
    order = (await _order(a, buyer, item)).json()
    await a.http.post(f"/v1/orders/{order['id']}/fulfill")
    refused = await a.http.post(f"/v1/orders/{order['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_order_state"
    refunded = await a.http.post(f"/v1/orders/{order['id']}/refund", json={})
    assert refunded.status_code == 200 and refunded.json()["status"] == "refunded"
    assert refunded.json()["refund_transaction"].startswith("txn_")
    assert await available(a, buyer) == 2000 and await _stock(a, item) == 4  # not restocked
    twice = await a.http.post(f"/v1/orders/{order['id']}/refund", json={"restock": True})
    assert twice.status_code == 409
    coupon = await product(
        a, kind="coupon", points_price=100, coupon_value="5", coupon_valid_days=10
    )
    used, unused = [(await _order(a, buyer, coupon)).json() for _ in range(2)]
    await a.http.post(f"/v1/coupons/{used['coupons'][0]}/redeem")
    blocked = await a.http.post(f"/v1/orders/{used['id']}/refund")
    assert blocked.status_code == 409 and blocked.json()["code"] == "coupon_redeemed"
    assert (await a.http.post(f"/v1/orders/{unused['id']}/refund")).status_code == 200
    voided = await a.http.get(f"/v1/coupons/{unused['coupons'][0]}")
    assert voided.json()["status"] == "void"
    assert (await a.http.post(f"/v1/coupons/{unused['coupons'][0]}/redeem")).status_code == 409
    await assert_ledger_invariants(engine, a.schema)


async def test_virtual_codes_delivered_on_confirmation(tenants: Tenants) -> None:
    a, b = tenants
    buyer = await member(a, "virtual", 5000)
    item = await product(a, kind="virtual", points_price=100, cash_price="2.00")
    assert (await _stock(a, item)) == 0
    with_stock = await a.http.post(
        "/v1/products", json={"name": "x", "kind": "virtual", "points_price": 1, "stock": 5}
    )
    assert with_stock.status_code == 422
    added = await a.http.post(
        f"/v1/products/{item}/codes", json={"codes": ["GIFT-1", "GIFT-2", "GIFT-1"]}
    )
    assert added.status_code == 201 and added.json() == {"product_id": item, "added": 2, "stock": 2}
    again = await a.http.post(f"/v1/products/{item}/codes", json={"codes": ["GIFT-2", "GIFT-3"]})
    assert again.json()["added"] == 1 and again.json()["stock"] == 3
    pending = (await _order(a, buyer, item)).json()
    assert pending["status"] == "pending_payment" and pending["codes"] == []
    confirmed = await a.http.post(
        f"/v1/orders/{pending['id']}/confirm-payment",
        json={"payment_id": pending["payment"]["payment_id"]},
    )
    assert confirmed.json()["codes"] == ["GIFT-1"]
    # A cancelled unpaid order's code goes back to the pool.
    dropped = (await _order(a, buyer, item)).json()
    await a.http.post(f"/v1/orders/{dropped['id']}/cancel")
    assert await _stock(a, item) == 2
    orders = [(await _order(a, buyer, item)).json() for _ in range(3)]
    assert [o.get("code") for o in orders] == [None, None, "out_of_stock"]
    delivered: list[str] = []
    for o in orders[:2]:
        paid = await a.http.post(
            f"/v1/orders/{o['id']}/confirm-payment", json={"payment_id": o["payment"]["payment_id"]}
        )
        delivered += paid.json()["codes"]
    assert sorted(delivered) == ["GIFT-2", "GIFT-3"]
    assert (
        await b.http.post(f"/v1/products/{item}/codes", json={"codes": ["x"]})
    ).status_code == 404


async def test_categories(tenants: Tenants) -> None:
    a, b = tenants
    gifts = await a.http.post("/v1/categories", json={"name": "Gifts"})
    assert gifts.status_code == 201 and gifts.json()["id"].startswith("cat_")
    mugs = (
        await a.http.post("/v1/categories", json={"name": "Mugs", "parent_id": gifts.json()["id"]})
    ).json()
    loop = await a.http.patch(
        f"/v1/categories/{gifts.json()['id']}", json={"parent_id": mugs["id"]}
    )
    assert loop.status_code == 409 and loop.json()["code"] == "category_cycle"
    unknown = await a.http.post(
        "/v1/products",
        json={
            "name": "Mug",
            "kind": "physical",
            "points_price": 1,
            "category": "cat_01jz0000000000000000000000",
        },
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_category"
    inside = await product(a, category=mugs["id"])
    await product(a)
    listed = (await a.http.get("/v1/products", params={"category": mugs["id"]})).json()["data"]
    assert [p["id"] for p in listed] == [inside]
    assert (await b.http.get(f"/v1/categories/{mugs['id']}")).status_code == 404
    assert len((await a.http.get("/v1/categories")).json()["data"]) == 2


class _FakeProvider:
    """A provider plugin as a connector would ship it: async, with its own wire calls."""

    name = "fakepay"

    def __init__(self) -> None:
        self.requests: list[PaymentRequest] = []
        self.refunds: list[RefundRequest] = []
        self.paid: set[str] = set()
        self.fail = False

    @hookimpl
    def pointsmall_payment_providers(self) -> list[str]:
        return [self.name]

    @hookimpl
    def pointsmall_create_payment(self, provider: str, request: PaymentRequest) -> Any:
        if provider != self.name:
            return None

        async def create() -> PaymentIntent:
            await asyncio.sleep(0)
            if self.fail:
                raise ConnectionError("gateway timeout")
            self.requests.append(request)
            return PaymentIntent(
                payment_id=f"fp_{len(self.requests)}",
                status="pending",
                redirect_url=f"https://pay.example/{len(self.requests)}",
            )

        return create()

    @hookimpl
    def pointsmall_payment_status(self, provider: str, payment_id: str) -> PaymentIntent | None:
        if provider != self.name:
            return None
        return PaymentIntent(payment_id, "succeeded" if payment_id in self.paid else "pending")

    @hookimpl
    def pointsmall_refund_payment(self, provider: str, request: RefundRequest) -> str | None:
        if provider != self.name:
            return None
        self.refunds.append(request)
        return f"fr_{len(self.refunds)}"


@pytest.fixture
def fakepay() -> Any:
    plugin = _FakeProvider()
    plugin_manager().register(plugin)
    yield plugin
    plugin_manager().unregister(plugin)


async def test_a_provider_plugin_gets_what_it_needs(
    tenants: Tenants, engine: AsyncEngine, fakepay: _FakeProvider
) -> None:
    a, _ = tenants
    buyer = await member(a, "plug", 1000)
    item = await product(a, points_price=100, cash_price="3.50", stock=1)
    order = (
        await _order(a, buyer, item, provider="fakepay", return_url="https://shop.example/back")
    ).json()
    sent = fakepay.requests[0]
    assert (sent.order_id, sent.amount, sent.currency) == (order["id"], "3.50", "USD")
    assert sent.return_url == "https://shop.example/back" and sent.tenant_id == a.id
    assert sent.idempotency_key.endswith(":pay")
    assert sent.expires_at == order["payment"]["expires_at"] and sent.expires_at.endswith("Z")
    assert order["payment"]["redirect_url"] == "https://pay.example/1"
    early = await a.http.post(
        f"/v1/orders/{order['id']}/confirm-payment", json={"payment_id": "fp_1"}
    )
    assert early.status_code == 409 and early.json()["code"] == "payment_incomplete"
    fakepay.paid.add("fp_1")
    paid = await a.http.post(
        f"/v1/orders/{order['id']}/confirm-payment", json={"payment_id": "fp_1"}
    )
    assert paid.json()["status"] == "confirmed"
    refunded = (
        await a.http.post(f"/v1/orders/{order['id']}/refund", json={"restock": True})
    ).json()
    assert (
        refunded["payment"]["status"] == "refunded" and refunded["payment"]["refund_id"] == "fr_1"
    )
    assert fakepay.refunds[0].amount == "3.50" and await _stock(a, item) == 1
    # A provider that fails: the order is cancelled again, nothing is held.
    fakepay.fail = True
    failed = await _order(a, buyer, item, provider="fakepay")
    assert failed.status_code == 502 and failed.json()["code"] == "payment_provider_error"
    assert await available(a, buyer) == 1000 and await _stock(a, item) == 1
    unknown = await _order(a, buyer, item, provider="nopay")
    assert unknown.status_code == 409 and unknown.json()["code"] == "unknown_payment_provider"
    await assert_ledger_invariants(engine, a.schema)


def test_every_hook_is_documented() -> None:
    from pointsmall import hookspecs

    hooks = [name for name in dir(hookspecs) if name.startswith("pointsmall_")]
    assert {"pointsmall_create_payment", "pointsmall_payment_status"} <= set(hooks)
    for name in hooks:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"{name} has no docstring"
    registered = plugin_manager().hook.pointsmall_payment_providers()
    assert ["manual"] in registered
