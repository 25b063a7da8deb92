"""Singles' Day, built through the API alone: double points on electronics orders over
100 CNY from 2026-11-11 00:00 to 23:59:59 Asia/Shanghai, at most 5,000 bonus points per
member per day. Events on both edges of both ends, and the cap."""

from collections.abc import AsyncIterator

import httpx
import pytest

SIGNUP = {
    "merchant_name": "Shanghai Electronics",
    "admin_email": "ops@sh.example",
    "password": "a long enough password",
    "timezone": "Asia/Shanghai",
    "currency": "CNY",
}


@pytest.fixture
async def shop(client: httpx.AsyncClient, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    signup = await client.post("/signup", json=SIGNUP)
    assert signup.status_code == 201, signup.text
    auth = {"Authorization": f"Bearer {signup.json()['api_key']}"}
    async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as http:
        base = await http.post(
            "/v1/rules",
            json={
                "name": "1 point per CNY",
                "trigger": "order.paid",
                "effect": {
                    "kind": "per_unit",
                    "field": "total",
                    "points_per_unit": "1",
                    "rounding": "floor",
                },
            },
        )
        assert base.status_code == 201, base.text
        campaign = await http.post(
            "/v1/rules",
            json={
                "name": "Singles' Day double points",
                "trigger": "order.paid",
                "condition": 'event.data.category == "electronics" && event.data.total > 100.0',
                "effect": {"kind": "multiplier", "factor": "2"},
                "schedule": {
                    "starts_at": "2026-11-11T00:00:00+08:00",
                    "ends_at": "2026-11-11T23:59:59+08:00",
                },
                "caps": {"per_member_day": 5000},
            },
        )
        assert campaign.status_code == 201, campaign.text
        yield http


async def _order(
    http: httpx.AsyncClient,
    member: str,
    order: str,
    at: str,
    total: float,
    category: str = "electronics",
) -> dict:  # type: ignore[type-arg]
    response = await http.post(
        "/v1/events",
        json={
            "type": "order.paid",
            "member_external_id": member,
            "occurred_at": at,
            "data": {"order_id": order, "total": total, "category": category},
        },
    )
    assert response.status_code in (200, 201), response.text
    body: dict = response.json()  # type: ignore[type-arg]
    return body


def _points(event: dict) -> int:  # type: ignore[type-arg]
    return sum(t["points"] for t in event["transactions"])


async def test_singles_day_edges_and_cap(shop: httpx.AsyncClient) -> None:
    await shop.post("/v1/members", json={"external_id": "ada"})
    before = await _order(shop, "ada", "o1", "2026-11-10T23:59:59+08:00", 150.0)
    first = await _order(shop, "ada", "o2", "2026-11-11T00:00:00+08:00", 150.0)
    last = await _order(shop, "ada", "o3", "2026-11-11T23:59:59+08:00", 150.0)
    after = await _order(shop, "ada", "o4", "2026-11-12T00:00:00+08:00", 150.0)
    assert [_points(e) for e in (before, first, last, after)] == [150, 300, 300, 150]
    reasons = {v["reason"] for v in before["verdicts"] if not v["fired"]}
    assert reasons == {"outside_schedule"}

    # Not electronics, or not over 100 CNY: no bonus.
    assert (
        _points(await _order(shop, "ada", "o5", "2026-11-11T12:00:00+08:00", 150.0, "books")) == 150
    )
    assert _points(await _order(shop, "ada", "o6", "2026-11-11T12:00:00+08:00", 100.0)) == 100

    # The cap: 300 bonus so far today; a 10,000 CNY order may add only 4,700 more.
    big = await _order(shop, "ada", "o7", "2026-11-11T13:00:00+08:00", 10000.0)
    assert _points(big) == 10000 + 4700
    capped = await _order(shop, "ada", "o8", "2026-11-11T14:00:00+08:00", 200.0)
    assert _points(capped) == 200
    assert any(v["reason"] == "cap_reached" for v in capped["verdicts"])

    # Another member has a cap of their own.
    await shop.post("/v1/members", json={"external_id": "bob"})
    assert _points(await _order(shop, "bob", "o9", "2026-11-11T15:00:00+08:00", 150.0)) == 300

    balance = (await shop.get("/v1/members", params={"external_id": "ada"})).json()["data"][0]
    ada_balance = (await shop.get(f"/v1/members/{balance['id']}/balance")).json()["balances"][0]
    assert ada_balance["available"] == 150 + 300 + 300 + 150 + 150 + 100 + 14700 + 200


async def test_same_order_twice_credits_once(shop: httpx.AsyncClient) -> None:
    await shop.post("/v1/members", json={"external_id": "cy"})
    first = await shop.post(
        "/v1/events",
        json={
            "type": "order.paid",
            "member_external_id": "cy",
            "occurred_at": "2026-11-11T10:00:00+08:00",
            "data": {"order_id": "dup-1", "total": 120.0, "category": "electronics"},
        },
    )
    again = await shop.post(
        "/v1/events",
        json={
            "type": "order.paid",
            "member_external_id": "cy",
            "occurred_at": "2026-11-11T10:00:00+08:00",
            "data": {"order_id": "dup-1", "total": 120.0, "category": "electronics"},
        },
    )
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    member = (await shop.get("/v1/members", params={"external_id": "cy"})).json()["data"][0]["id"]
    balance = (await shop.get(f"/v1/members/{member}/balance")).json()["balances"][0]
    assert balance["available"] == 240
