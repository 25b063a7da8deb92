"""Coupons: unguessable single-use codes; concurrent redemption of one code → one success."""

import asyncio
import re

from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]


async def test_coupon_issue_validate_redeem_once(tenants: Tenants) -> None:
    a, b = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "cp"})).json()["id"]
    await a.http.post(
        "/v1/points/earn", json={"member_id": member, "points": 1000, "reason": "seed"}
    )
    product = await a.http.post(
        "/v1/products",
        json={
            "name": "10 CNY off",
            "kind": "coupon",
            "points_price": 200,
            "coupon_value": "10",
            "currency": "CNY",
            "coupon_valid_days": 30,
        },
    )
    assert product.status_code == 201, product.text
    order = await a.http.post(
        "/v1/orders",
        json={"member_id": member, "lines": [{"product_id": product.json()["id"], "quantity": 2}]},
    )
    codes = order.json()["coupons"]
    assert len(codes) == 2 and len(set(codes)) == 2
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{20}", c) for c in codes)  # 100 bits, no I/L/O/U
    code = codes[0]
    valid = (await a.http.get(f"/v1/coupons/{code}")).json()
    assert valid["status"] == "valid" and valid["value"] == "10.00" and valid["currency"] == "CNY"
    assert (await b.http.get(f"/v1/coupons/{code}")).status_code == 404  # another tenant's code

    attempts = await asyncio.gather(
        *(
            a.http.post(f"/v1/coupons/{code}/redeem", json={"reference": f"checkout-{i}"})
            for i in range(20)
        )
    )
    assert [r.status_code for r in attempts].count(200) == 1
    assert {r.json()["code"] for r in attempts if r.status_code != 200} == {"coupon_redeemed"}
    assert (await a.http.get(f"/v1/coupons/{code}")).json()["status"] == "redeemed"
    assert (await a.http.get("/v1/coupons/NOSUCHCODE000000000X")).status_code == 404


async def test_coupon_product_needs_validity(tenants: Tenants) -> None:
    a, _ = tenants
    response = await a.http.post(
        "/v1/products", json={"name": "c", "kind": "coupon", "points_price": 1}
    )
    assert response.status_code == 422
