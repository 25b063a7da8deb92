"""Rules: conditions compile when saved, failures at run time are explained, versions."""

import httpx
import pytest

from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]
FIXED = {"kind": "fixed", "points": 10}


@pytest.mark.parametrize(
    ("condition", "needle"),
    [
        ("event.data.total >", "Syntax error"),
        ("order.total > 1", "unknown variable"),
        ("member.favourite_colour == 'red'", "unknown member field"),
    ],
)
async def test_bad_condition_is_422(tenants: Tenants, condition: str, needle: str) -> None:
    a, _ = tenants
    response = await a.http.post(
        "/v1/rules",
        json={"name": "r", "trigger": "order.paid", "condition": condition, "effect": FIXED},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert any(needle in e["message"] for e in response.json()["errors"]), response.json()
    assert (await a.http.get("/v1/rules")).json()["data"] == []


@pytest.mark.parametrize(
    ("condition", "data", "reason"),
    [
        ("1 / event.data.zero > 0", {"zero": 0}, "error: division by zero"),
        ("event.data.missing > 1", {}, "error: missing key 'missing'"),
        ("event.data.total > 100.0", {"total": "lots"}, "error: type mismatch"),
    ],
)
async def test_runtime_failure_skips_rule_with_reason(
    tenants: Tenants, condition: str, data: dict[str, object], reason: str
) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "m"})).json()["id"]
    created = await a.http.post(
        "/v1/rules",
        json={
            "name": "fragile",
            "trigger": "custom.visit",
            "condition": condition,
            "effect": FIXED,
        },
    )
    assert created.status_code == 201, created.text
    await a.http.post(
        "/v1/rules",
        json={"name": "solid", "trigger": "custom.visit", "effect": {"kind": "fixed", "points": 3}},
    )
    event = {
        "type": "custom.visit",
        "member_id": member,
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": data,
    }
    simulated = await a.http.post("/v1/rules/simulate", json={"event": event})
    assert simulated.status_code == 200, simulated.text
    verdicts = {v["rule_id"]: v for v in simulated.json()["verdicts"]}
    assert verdicts[created.json()["id"]]["reason"].startswith(reason)
    recorded = await a.http.post("/v1/events", json=event)
    assert recorded.status_code == 201, recorded.text
    assert [t["points"] for t in recorded.json()["transactions"]] == [3]  # the solid rule only


async def test_editing_makes_a_version_and_credits_name_it(tenants: Tenants) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "v"})).json()["id"]
    rule = (
        await a.http.post(
            "/v1/rules", json={"name": "welcome", "trigger": "member.signed_up", "effect": FIXED}
        )
    ).json()
    assert rule["version"] == 1
    renamed = (await a.http.patch(f"/v1/rules/{rule['id']}", json={"name": "hello"})).json()
    assert renamed["version"] == 1  # a name is not a version
    changed = (
        await a.http.patch(
            f"/v1/rules/{rule['id']}", json={"effect": {"kind": "fixed", "points": 25}}
        )
    ).json()
    assert changed["version"] == 2 and changed["version_id"].endswith(".v2")
    event = {"type": "member.signed_up", "member_id": member, "occurred_at": "2026-01-01T00:00:00Z"}
    recorded = (await a.http.post("/v1/events", json=event)).json()
    [credit] = recorded["transactions"]
    assert credit["points"] == 25 and credit["granted_by"] == f"rule:{rule['id']}"
    off = await a.http.delete(f"/v1/rules/{rule['id']}")
    assert off.json() == {"id": rule["id"], "deleted": True, "object": "rule"}
    assert (await a.http.get(f"/v1/rules/{rule['id']}")).status_code == 404
    assert (await a.http.post("/v1/events", json=event)).json()["transactions"] == []


async def test_draft_simulation_writes_nothing(tenants: Tenants) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "d"})).json()["id"]
    draft = {
        "name": "draft",
        "trigger": "order.paid",
        "condition": "event.data.total >= 50.0",
        "effect": {
            "kind": "per_unit",
            "field": "total",
            "points_per_unit": "2",
            "rounding": "round",
        },
    }
    event = {
        "type": "order.paid",
        "member_id": member,
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {"order_id": "x", "total": 60.25},
    }
    simulated = (
        await a.http.post("/v1/rules/simulate", json={"event": event, "draft": draft})
    ).json()
    assert simulated["points"] == 121 and simulated["verdicts"][0]["fired"]
    balance = (await a.http.get(f"/v1/members/{member}/balance")).json()["balances"][0]
    assert balance["available"] == 0


async def test_events_are_tenant_scoped(tenants: Tenants) -> None:
    a, b = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "s"})).json()["id"]
    event = {"type": "custom.visit", "member_id": member, "occurred_at": "2026-01-01T00:00:00Z"}
    assert (await b.http.post("/v1/events", json=event)).status_code == 404
    bad = await a.http.post("/v1/events", json=event | {"occurred_at": "2026-01-01T00:00:00"})
    assert bad.status_code == 422
    both = await a.http.post("/v1/events", json=event | {"member_external_id": "s"})
    assert both.status_code == 422


async def test_rule_needs_known_point_type(client: httpx.AsyncClient, tenants: Tenants) -> None:
    a, _ = tenants
    response = await a.http.post(
        "/v1/rules",
        json={"name": "r", "trigger": "order.paid", "effect": FIXED, "point_type": "nope"},
    )
    assert response.status_code == 409 and response.json()["code"] == "unknown_point_type"


async def test_per_item_effect_matches_sku_or_category(tenants: Tenants) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "items"})).json()["id"]
    rule = await a.http.post(
        "/v1/rules",
        json={
            "name": "electronics x3",
            "trigger": "order.paid",
            "effect": {"kind": "per_item", "category": "electronics", "points_per_unit": "3"},
        },
    )
    assert rule.status_code == 201, rule.text
    neither = await a.http.post(
        "/v1/rules",
        json={
            "name": "bad",
            "trigger": "order.paid",
            "effect": {"kind": "per_item", "points_per_unit": "1"},
        },
    )
    assert neither.status_code == 422
    items = [
        {"sku": "tv", "category": "electronics", "price": 100.5, "quantity": 2},
        {"sku": "book", "category": "books", "price": 20, "quantity": 1},
        {"sku": "cable", "category": "electronics", "price": 5},
    ]
    event = {
        "type": "order.paid",
        "member_id": member,
        "occurred_at": "2026-02-02T00:00:00Z",
        "data": {"order_id": "items-1", "items": items},
    }
    recorded = (await a.http.post("/v1/events", json=event)).json()
    assert [t["points"] for t in recorded["transactions"]] == [(201 + 5) * 3]


async def test_failing_credit_leaves_no_partial_event(tenants: Tenants) -> None:
    """If any credit of an event fails (here: a suspended member), nothing of it stays."""
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "susp"})).json()["id"]
    await a.http.post("/v1/rules", json={"name": "one", "trigger": "custom.visit", "effect": FIXED})
    await a.http.post("/v1/rules", json={"name": "two", "trigger": "custom.visit", "effect": FIXED})
    await a.http.patch(f"/v1/members/{member}", json={"status": "suspended"})
    event = {"type": "custom.visit", "member_id": member, "occurred_at": "2026-01-01T00:00:00Z"}
    refused = await a.http.post("/v1/events", json=event, headers={"Idempotency-Key": "visit-1"})
    assert refused.status_code == 409 and refused.json()["code"] == "member_suspended"
    await a.http.patch(f"/v1/members/{member}", json={"status": "active"})
    retried = await a.http.post("/v1/events", json=event, headers={"Idempotency-Key": "visit-1"})
    assert retried.status_code == 201  # the failed attempt stored nothing, not even its key
    assert len(retried.json()["transactions"]) == 2
