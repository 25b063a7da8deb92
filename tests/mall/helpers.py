"""Shared steps of the mall tests."""

from typing import Any

from tests.conftest import TenantClient


async def member(t: TenantClient, name: str, points: int) -> str:
    member: str = (await t.http.post("/v1/members", json={"external_id": name})).json()["id"]
    if points:
        await t.http.post(
            "/v1/points/earn", json={"member_id": member, "points": points, "reason": "seed"}
        )
    return member


async def product(t: TenantClient, **fields: Any) -> str:
    response = await t.http.post(
        "/v1/products", json={"name": "Mug", "kind": "physical", "points_price": 100} | fields
    )
    assert response.status_code == 201, response.text
    product: str = response.json()["id"]
    return product


async def available(t: TenantClient, member: str) -> int:
    return int(
        (await t.http.get(f"/v1/members/{member}/balance")).json()["balances"][0]["available"]
    )
