"""Issue 10, rules and events: CEL time-zone accessors and conditions type-checked when saved
(6), `order.*` events need `data.order_id` (7), no events from the future nor check-ins
older than the tenant's window (16), no event worth more than 2^53 points (3)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]
FIXED = {"kind": "fixed", "points": 10}
PER_UNIT = {"kind": "per_unit", "field": "total", "points_per_unit": "1"}
MAX_POINTS = 2**53


async def _member(a: TenantClient, external_id: str) -> str:
    response = await a.http.post("/v1/members", json={"external_id": external_id})
    assert response.status_code == 201, response.text
    member: str = response.json()["id"]
    return member


async def _rule(
    a: TenantClient,
    condition: str = "true",
    *,
    trigger: str = "custom.visit",
    effect: dict[str, Any] = FIXED,
) -> httpx.Response:
    body = {"name": "r", "trigger": trigger, "condition": condition, "effect": effect}
    return await a.http.post("/v1/rules", json=body)


def _event(member: str, occurred_at: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "custom.visit",
        "member_id": member,
        "occurred_at": occurred_at,
        "data": data or {},
    }


def _field_errors(response: httpx.Response) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json()["errors"]}


async def _balance(a: TenantClient, member: str) -> int:
    response = await a.http.get(f"/v1/members/{member}/balance")
    available: int = sum(b["available"] for b in response.json()["balances"])
    return available


# --- 6: time-zone accessors; conditions are type-checked when saved -------------------------


async def test_time_zone_accessors_judge_the_local_time(tenants: Tenants) -> None:
    """'Every 11 November in Shanghai' can be written; without a zone an accessor is UTC,
    whatever offset the event was sent with (months and days of month count from 0)."""
    a, _ = tenants
    member = await _member(a, "tz")
    singles_day = await _rule(
        a,
        'event.occurred_at.getMonth("Asia/Shanghai") == 10'
        ' && event.occurred_at.getDayOfMonth("Asia/Shanghai") == 10',
    )
    midnight = await _rule(
        a,
        'event.occurred_at.getHours("+08:00") == 0'
        ' && event.occurred_at.getDate("Asia/Shanghai") == 11'
        " && event.occurred_at.getHours() == 16",
    )
    assert singles_day.status_code == 201, singles_day.text
    assert midnight.status_code == 201, midnight.text
    ids = {singles_day.json()["id"], midnight.json()["id"]}
    for occurred_at, fired in [
        ("2026-11-10T16:30:00Z", True),  # 00:30 on the 11th in Shanghai
        ("2026-11-11T00:30:00+08:00", True),  # the same instant
        ("2026-11-10T15:59:59Z", False),  # 23:59:59 on the 10th in Shanghai
    ]:
        simulated = await a.http.post(
            "/v1/rules/simulate", json={"event": _event(member, occurred_at)}
        )
        assert simulated.status_code == 200, simulated.text
        reasons = {v["rule_id"]: v["reason"] for v in simulated.json()["verdicts"]}
        expected = "fired" if fired else "condition_false"
        assert reasons == dict.fromkeys(ids, expected), (occurred_at, reasons)
    recorded = await a.http.post("/v1/events", json=_event(member, "2026-11-10T16:30:00Z"))
    assert recorded.status_code == 201, recorded.text
    assert [t["points"] for t in recorded.json()["transactions"]] == [10, 10]


@pytest.mark.parametrize(
    ("condition", "needle"),
    [
        ('event.occurred_at.getMonht("Asia/Shanghai") == 10', "unknown function 'getMonht'"),
        ("sizeof(event.data) > 1", "unknown function 'sizeof'"),
        ("event.occurred_at.getMonth(8) == 10", "no overload of 'getMonth'"),
        ('event.occurred_at.getMonth("Mars/Olympus") == 10', "not a time zone"),
        ('member.lifetime_points.startsWith("1")', "no overload of 'startsWith'"),
        ('member.streak + "1" == 2', "no overload of '+'"),
        ("member.streak == 1 && member.tier", "no overload of '&&'"),
        ('member.signup_date > "2026-01-01"', "no overload of '>'"),
        ("now.getDayOfWeek()", "not a bool"),
        ("event.amount > 1", "unknown event field 'amount'"),
        ("[1, 2].exists(n, m > 1)", "unknown variable 'm'"),
    ],
)
async def test_condition_is_type_checked_when_saved(
    tenants: Tenants, condition: str, needle: str
) -> None:
    a, _ = tenants
    created = await _rule(a, condition)
    assert created.status_code == 422, created.text
    assert created.json()["code"] == "validation_error"
    assert needle in _field_errors(created).get("condition", ""), created.json()
    assert (await a.http.get("/v1/rules")).json()["data"] == []
    # The same check on an edit and on a draft.
    rule = (await _rule(a)).json()
    edited = await a.http.patch(f"/v1/rules/{rule['id']}", json={"condition": condition})
    assert edited.status_code == 422 and "condition" in _field_errors(edited)
    member = await _member(a, "draft")
    draft = {"name": "d", "trigger": "custom.visit", "condition": condition, "effect": FIXED}
    simulated = await a.http.post(
        "/v1/rules/simulate",
        json={"event": _event(member, "2026-11-08T12:00:00Z"), "draft": draft},
    )
    assert simulated.status_code == 422 and "draft.condition" in _field_errors(simulated)


@pytest.mark.parametrize(
    "condition",
    [
        "type(event.data.total) == double && type(member.streak) == int",
        "type(member.id) == string && type(event.data.items) == list",
        "[1, 2, 3].exists(n, n == member.streak + 1)",
        'has(event.data.sku) && event.data.sku in ["tv", "radio"]',
        'now - member.signup_date < duration("24h")',
        'member.tier == null || member.tier.startsWith("g")',
        "event.data.items.all(i, i.price > 0.0) && size(event.data.items) == 1",
        'event.occurred_at.getDayOfWeek("America/New_York") in [0, 6]',
        'timestamp(event.data.when).getHours("Asia/Shanghai") == 0',
        '{"a": 1}.a == 1 && event.type == "custom.visit" && member.attributes.size() == 0',
    ],
)
async def test_well_typed_conditions_save_and_fire(tenants: Tenants, condition: str) -> None:
    a, _ = tenants
    member = await _member(a, "ok")
    created = await _rule(a, condition)
    assert created.status_code == 201, created.text
    data = {
        "total": 12.5,
        "sku": "tv",
        "items": [{"price": 1.0}],
        "when": "2026-11-10T16:00:00Z",
    }
    simulated = await a.http.post(
        "/v1/rules/simulate", json={"event": _event(member, "2026-11-08T12:00:00Z", data)}
    )
    assert simulated.status_code == 200, simulated.text
    assert [v["reason"] for v in simulated.json()["verdicts"]] == ["fired"]


async def test_a_missing_data_key_stays_a_run_time_skip(tenants: Tenants) -> None:
    a, _ = tenants
    member = await _member(a, "skip")
    created = await _rule(a, 'event.data.paid_at.getHours("Asia/Shanghai") == 0')
    assert created.status_code == 201, created.text
    recorded = await a.http.post("/v1/events", json=_event(member, "2026-11-08T12:00:00Z"))
    assert recorded.status_code == 201, recorded.text
    [verdict] = recorded.json()["verdicts"]
    assert verdict["reason"] == "error: missing key 'paid_at'"


# --- 7: order events need their order id ------------------------------------------------


async def test_order_events_need_an_order_id(tenants: Tenants) -> None:
    a, _ = tenants
    member = await _member(a, "orders")
    assert (await _rule(a, trigger="order.paid", effect=PER_UNIT)).status_code == 201
    for event_type in ("order.paid", "order.refunded"):
        for order_id in (None, "", True, 12.5, {"id": 1}, "x" * 129):
            data: dict[str, Any] = {"total": 10} | (
                {} if order_id is None else {"order_id": order_id}
            )
            event = _event(member, "2026-11-08T12:00:00Z", data) | {"type": event_type}
            for path, body, field in [
                ("/v1/events", event, "data.order_id"),
                ("/v1/rules/simulate", {"event": event}, "event.data.order_id"),
            ]:
                refused = await a.http.post(path, json=body)
                assert refused.status_code == 422, (path, order_id, refused.text)
                assert field in _field_errors(refused), refused.json()
    assert await _balance(a, member) == 0
    # With its id, the same order twice credits once.
    event = _event(member, "2026-11-08T12:00:00Z", {"order_id": 7, "total": 10})
    first = await a.http.post("/v1/events", json=event | {"type": "order.paid"})
    again = await a.http.post("/v1/events", json=event | {"type": "order.paid"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await _balance(a, member) == 10


# --- 16: no events from the future, no check-ins older than the tenant's window -------------


async def test_events_from_the_future_are_refused(tenants: Tenants) -> None:
    a, _ = tenants
    member = await _member(a, "future")
    assert (await _rule(a)).status_code == 201
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for occurred_at in ("9999-12-31T23:59:59Z", tomorrow):
        event = _event(member, occurred_at)
        for path, body, field in [
            ("/v1/events", event, "occurred_at"),
            ("/v1/rules/simulate", {"event": event}, "event.occurred_at"),
            ("/v1/checkins", {"member_id": member, "occurred_at": occurred_at}, "occurred_at"),
        ]:
            refused = await a.http.post(path, json=body)
            assert refused.status_code == 422, (path, occurred_at, refused.text)
            assert refused.json()["code"] == "occurred_at_in_future"
            assert field in _field_errors(refused), refused.json()
    ancient = await a.http.post("/v1/events", json=_event(member, "0001-01-01T00:00:00Z"))
    assert ancient.status_code == 422 and "occurred_at" in _field_errors(ancient)
    assert await _balance(a, member) == 0
    # A client clock a minute ahead is not the future.
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert (await a.http.post("/v1/events", json=_event(member, soon))).status_code == 201


async def test_checkins_older_than_the_tenants_window_are_refused(tenants: Tenants) -> None:
    a, _ = tenants
    member = await _member(a, "late")
    assert (await a.http.get("/v1/settings")).json()["checkin_backdate_days"] == 0
    now = datetime.now(UTC)

    async def check_in(at: datetime | None) -> httpx.Response:
        body = {"member_id": member} | ({"occurred_at": at.isoformat()} if at else {})
        return await a.http.post("/v1/checkins", json=body)

    yesterday = await check_in(now - timedelta(days=1))
    assert yesterday.status_code == 422, yesterday.text
    assert yesterday.json()["code"] == "checkin_too_old"
    assert "occurred_at" in _field_errors(yesterday)
    assert (await check_in(None)).status_code == 201  # today, by the server's clock

    for days in (-1, 366, "2"):
        bad = await a.http.patch("/v1/settings", json={"checkin_backdate_days": days})
        assert bad.status_code == 422, (days, bad.text)
    widened = await a.http.patch("/v1/settings", json={"checkin_backdate_days": 2})
    assert widened.status_code == 200 and widened.json()["checkin_backdate_days"] == 2
    assert (await a.http.get("/v1/settings")).json()["checkin_backdate_days"] == 2
    two_days_ago = await check_in(now - timedelta(days=2) + timedelta(hours=1))
    assert two_days_ago.status_code == 201, two_days_ago.text
    three_days_ago = await check_in(now - timedelta(days=3))
    assert three_days_ago.status_code == 422
    assert three_days_ago.json()["code"] == "checkin_too_old"


# --- 3: no event worth more than 2^53 points ------------------------------------------------


async def test_points_beyond_2_53_are_refused_everywhere(tenants: Tenants) -> None:
    a, _ = tenants
    member = await _member(a, "huge")
    assert (await _rule(a, trigger="order.paid", effect=PER_UNIT)).status_code == 201
    items = {"kind": "per_item", "category": "tv", "points_per_unit": "1"}
    assert (await _rule(a, trigger="custom.visit", effect=items)).status_code == 201
    order = _event(member, "2026-11-08T12:00:00Z", {"order_id": "big", "total": 1e20})
    order["type"] = "order.paid"
    lines = [{"category": "tv", "price": 1e19, "quantity": 10}]
    visit = _event(member, "2026-11-08T12:00:00Z", {"items": lines})
    for event, field in [(order, "data.total"), (visit, "data.items")]:
        for path, body, prefix in [
            ("/v1/events", event, ""),
            ("/v1/rules/simulate", {"event": event}, "event."),
        ]:
            refused = await a.http.post(path, json=body)
            assert refused.status_code == 422, (path, refused.text)
            assert refused.json()["code"] == "points_out_of_range"
            assert prefix + field in _field_errors(refused), refused.json()
    assert await _balance(a, member) == 0
    # 2^53 itself is a number every client reads: simulate tells it as it is.
    order["data"] = {"order_id": "edge", "total": MAX_POINTS}
    edge = await a.http.post("/v1/rules/simulate", json={"event": order})
    assert edge.status_code == 200 and edge.json()["points"] == MAX_POINTS, edge.text
    # Rules that each stay below the limit but together pass it are refused too.
    half = {"kind": "fixed", "points": MAX_POINTS // 2 + 1}
    for _ in range(2):
        assert (await _rule(a, trigger="custom.signal", effect=half)).status_code == 201
    signal = _event(member, "2026-11-08T12:00:00Z") | {"type": "custom.signal"}
    refused = await a.http.post("/v1/events", json=signal)
    assert refused.status_code == 422 and refused.json()["code"] == "points_out_of_range"
    assert await _balance(a, member) == 0
