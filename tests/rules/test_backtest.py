"""Backtest: what a draft rule would have issued over stored events, per local day."""

from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]


async def test_backtest_per_day_with_cap(tenants: Tenants) -> None:
    a, _ = tenants
    await a.http.post(
        "/v1/rules",
        json={
            "name": "base",
            "trigger": "order.paid",
            "effect": {"kind": "per_unit", "field": "total", "points_per_unit": "1"},
        },
    )
    member = (await a.http.post("/v1/members", json={"external_id": "bt"})).json()["id"]
    for n, (at, total) in enumerate(
        [
            ("2026-04-01T10:00:00Z", 50.0),
            ("2026-04-01T11:00:00Z", 80.0),
            ("2026-04-02T10:00:00Z", 30.0),
            ("2026-05-01T10:00:00Z", 99.0),
        ]
    ):
        response = await a.http.post(
            "/v1/events",
            json={
                "type": "order.paid",
                "member_id": member,
                "occurred_at": at,
                "data": {"order_id": f"b{n}", "total": total},
            },
        )
        assert response.status_code == 201
    draft = {
        "name": "double April",
        "trigger": "order.paid",
        "effect": {"kind": "multiplier", "factor": "2"},
        "condition": "event.data.total >= 40.0",
        "caps": {"per_member_day": 100},
    }
    result = await a.http.post(
        "/v1/rules/backtest",
        json={"draft": draft, "from": "2026-04-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
    )
    assert result.status_code == 200, result.text
    body = result.json()
    assert [(d["date"], d["events"], d["fired"], d["points"]) for d in body["days"]] == [
        ("2026-04-01", 2, 2, 100),  # 50 + 80 would be 130; the daily cap keeps 100
        ("2026-04-02", 1, 0, 0),  # 30 is under the condition
    ]
    assert body["points"] == 100 and body["liability"] == "1.00" and not body["truncated"]
    # Nothing was written.
    balance = (await a.http.get(f"/v1/members/{member}/balance")).json()["balances"][0]
    assert balance["available"] == 50 + 80 + 30 + 99
    backwards = await a.http.post(
        "/v1/rules/backtest",
        json={"draft": draft, "from": "2026-05-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
