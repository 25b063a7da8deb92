"""The contract of the ledger's and rules' routes: one list envelope with paging, a deleted
rule is gone, UTC in every answer and outbox payload, one written form for decimals, money
in the currency's minor-unit digits, tier benefits, PATCH of point types, and what the
OpenAPI document says of them."""

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.ledger import schemas as ledger_schemas
from pointsmall.ledger.models import LedgerTransaction, Lot, OutboxEvent
from pointsmall.ledger.schemas import SINCE_1970
from pointsmall.members import schemas as member_schemas
from pointsmall.rules import schemas as rules_schemas
from pointsmall.rules.models import Rule, RuleAward
from pointsmall.tenancy.models import TenantSettings
from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]
FIXED = {"kind": "fixed", "points": 10}
UTC_TEXT = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"


def _is_utc(value: str) -> bool:
    return re.fullmatch(UTC_TEXT, value) is not None


async def _member(t: TenantClient, external_id: str) -> str:
    response = await t.http.post("/v1/members", json={"external_id": external_id})
    assert response.status_code == 201, response.text
    member_id: str = response.json()["id"]
    return member_id


async def _walk(t: TenantClient, path: str, limit: int) -> list[dict[str, Any]]:
    """Every page of a list, checking the envelope on each."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["starting_after"] = cursor
        response = await t.http.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"data", "has_more", "next_cursor"}
        assert len(page["data"]) <= limit
        items += page["data"]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return items
        assert page["next_cursor"] is not None and len(page["data"]) == limit
        cursor = page["next_cursor"]


async def _limits_checked(t: TenantClient, path: str) -> None:
    for bad in ("0", "101", "x"):
        response = await t.http.get(path, params={"limit": bad})
        assert response.status_code == 422, (path, bad, response.text)


# --- one list envelope ---------------------------------------------------------------


async def test_point_types_page_in_key_order(tenants: Tenants) -> None:
    a, b = tenants
    for key in ("zeta", "alpha", "mid"):
        response = await a.http.post("/v1/point-types", json={"key": key, "name": key.title()})
        assert response.status_code == 201, response.text
    default = (await a.http.get("/v1/point-types")).json()
    assert [p["key"] for p in default["data"]] == ["alpha", "mid", "points", "zeta"]
    assert default["has_more"] is False and default["next_cursor"] is None
    walked = await _walk(a, "/v1/point-types", 3)
    assert [p["key"] for p in walked] == ["alpha", "mid", "points", "zeta"]
    first = (await a.http.get("/v1/point-types", params={"limit": 2})).json()
    assert first["has_more"] is True and first["next_cursor"] == "mid"
    # Another tenant sees its own default type only.
    assert [p["key"] for p in (await b.http.get("/v1/point-types")).json()["data"]] == ["points"]
    await _limits_checked(a, "/v1/point-types")


async def test_rules_page_newest_first_without_deleted(tenants: Tenants) -> None:
    a, b = tenants
    ids = []
    for n in range(5):
        body = {"name": f"r{n}", "trigger": "custom.visit", "effect": FIXED}
        if n == 1:
            body["status"] = "inactive"
        response = await a.http.post("/v1/rules", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    assert (await a.http.delete(f"/v1/rules/{ids[2]}")).status_code == 200
    walked = await _walk(a, "/v1/rules", 2)
    assert [r["id"] for r in walked] == [ids[4], ids[3], ids[1], ids[0]]
    inactive = (await a.http.get("/v1/rules", params={"status": "inactive"})).json()
    assert [r["id"] for r in inactive["data"]] == [ids[1]]
    assert (await b.http.get("/v1/rules")).json() == {
        "data": [],
        "has_more": False,
        "next_cursor": None,
    }
    await _limits_checked(a, "/v1/rules")


async def test_tiers_page_up_the_ladder(tenants: Tenants) -> None:
    a, b = tenants
    for key, threshold in (("gold", 500), ("bronze", 0), ("silver", 100), ("iron", 100)):
        body = {"key": key, "name": key.title(), "threshold": threshold}
        assert (await a.http.post("/v1/tiers", json=body)).status_code == 201
    walked = await _walk(a, "/v1/tiers", 2)
    assert [t["key"] for t in walked] == ["bronze", "iron", "silver", "gold"]
    page = (await a.http.get("/v1/tiers", params={"limit": 1, "starting_after": "iron"})).json()
    assert [t["key"] for t in page["data"]] == ["silver"] and page["next_cursor"] == "silver"
    unknown = await a.http.get("/v1/tiers", params={"starting_after": "nope"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    assert (await b.http.get("/v1/tiers")).json()["data"] == []
    # Another tenant's key is no cursor here.
    assert (await b.http.get("/v1/tiers", params={"starting_after": "gold"})).status_code == 404
    await _limits_checked(a, "/v1/tiers")


async def _tiered_member(t: TenantClient, occurred_at: str) -> tuple[str, list[dict[str, Any]]]:
    """A member lifted through three tiers by three events; the events' answers."""
    for key, threshold in (("t1", 10), ("t2", 20), ("t3", 30)):
        body = {"key": key, "name": key, "threshold": threshold}
        assert (await t.http.post("/v1/tiers", json=body)).status_code == 201
    body = {"name": "visit", "trigger": "custom.visit", "effect": FIXED}
    assert (await t.http.post("/v1/rules", json=body)).status_code == 201
    member = await _member(t, "tiered")
    answers = []
    for _ in range(3):
        event = {"type": "custom.visit", "member_id": member, "occurred_at": occurred_at}
        response = await t.http.post("/v1/events", json=event)
        assert response.status_code == 201, response.text
        answers.append(response.json())
    return member, answers


async def test_tier_history_pages_newest_first(tenants: Tenants) -> None:
    a, b = tenants
    member, _ = await _tiered_member(a, "2026-03-01T10:00:00Z")
    walked = await _walk(a, f"/v1/members/{member}/tier-history", 2)
    assert [(h["from_tier"], h["to_tier"]) for h in walked] == [
        ("t2", "t3"),
        ("t1", "t2"),
        (None, "t1"),
    ]
    assert all(h["object"] == "tier_change" and h["member_id"] == member for h in walked)
    assert all(h["id"].startswith("tch_") for h in walked)
    # A cursor of the wrong kind is a 422; another tenant's member is a 404.
    bad = await a.http.get(f"/v1/members/{member}/tier-history", params={"starting_after": "mem_x"})
    assert bad.status_code == 422
    assert (await b.http.get(f"/v1/members/{member}/tier-history")).status_code == 404
    await _limits_checked(a, f"/v1/members/{member}/tier-history")


# --- a deleted rule is gone ------------------------------------------------------------


async def test_deleted_rule_is_404_and_judges_nothing(
    tenants: Tenants, engine: AsyncEngine
) -> None:
    a, b = tenants
    member = await _member(a, "del")
    rule = (
        await a.http.post(
            "/v1/rules", json={"name": "gone", "trigger": "custom.visit", "effect": FIXED}
        )
    ).json()
    event = {"type": "custom.visit", "member_id": member, "occurred_at": "2026-02-01T00:00:00Z"}
    [credit] = (await a.http.post("/v1/events", json=event)).json()["transactions"]
    # Another tenant cannot delete it.
    assert (await b.http.delete(f"/v1/rules/{rule['id']}")).status_code == 404
    deleted = await a.http.delete(f"/v1/rules/{rule['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": rule["id"], "deleted": True, "object": "rule"}
    for method, body in (("GET", None), ("PATCH", {"name": "back"}), ("DELETE", None)):
        again = await a.http.request(method, f"/v1/rules/{rule['id']}", json=body)
        assert again.status_code == 404, (method, again.text)
        assert again.json()["code"] == "not_found"
    assert (await a.http.get("/v1/rules")).json()["data"] == []
    assert (await a.http.post("/v1/events", json=event)).json()["transactions"] == []
    # The data stays: the credit still names the version, the rule row is marked.
    async with a.db(engine) as session:
        version = await session.scalar(
            select(LedgerTransaction.rule_version).where(LedgerTransaction.id == credit["id"])
        )
        assert version == rule["version_id"]
        row = await session.get(Rule, rule["id"])
        assert row is not None and row.deleted_at is not None and row.status == "inactive"
        awards = await session.scalars(select(RuleAward).where(RuleAward.rule_id == rule["id"]))
        assert len(awards.all()) == 1


# --- UTC everywhere ----------------------------------------------------------------------


async def _shanghai(t: TenantClient, engine: AsyncEngine) -> None:
    async with t.db(engine) as session, session.begin():
        await session.execute(update(TenantSettings).values(timezone="Asia/Shanghai"))


async def _outbox(t: TenantClient, engine: AsyncEngine, kind: str) -> list[dict[str, Any]]:
    async with t.db(engine) as session:
        rows = await session.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.type == kind).order_by(OutboxEvent.id)
        )
        return list(rows.all())


async def test_utc_in_answers_and_outbox(tenants: Tenants, engine: AsyncEngine) -> None:
    a, _ = tenants
    await _shanghai(a, engine)
    # 00:30 on 2 March in Shanghai is 16:30 on 1 March in UTC.
    member, answers = await _tiered_member(a, "2026-03-02T00:30:00+08:00")
    for answer in answers:
        assert answer["occurred_at"] == "2026-03-01T16:30:00Z"
        assert answer["local_date"] == "2026-03-02"
        assert all(_is_utc(tr["created_at"]) for tr in answer["transactions"])
    history = (await a.http.get(f"/v1/members/{member}/tier-history")).json()["data"]
    assert {h["at"] for h in history} == {"2026-03-01T16:30:00Z"}
    changes = await _outbox(a, engine, "member.tier_changed")
    assert [c["at"] for c in changes] == ["2026-03-01T16:30:00Z"] * 3
    earned = await _outbox(a, engine, "points.earned")
    assert earned and all(_is_utc(e["created_at"]) for e in earned)
    created = await _outbox(a, engine, "member.created")
    assert created and all(_is_utc(c["created_at"]) for c in created)
    # A replayed event answers as the first did: UTC, with its local date.
    event = {
        "type": "custom.visit",
        "member_id": member,
        "occurred_at": "2026-03-02T09:00:00+08:00",
    }
    headers = {"Idempotency-Key": "utc-replay"}
    first = await a.http.post("/v1/events", json=event, headers=headers)
    replay = await a.http.post("/v1/events", json=event, headers=headers)
    assert first.status_code == 201 and replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert replay.json()["occurred_at"] == "2026-03-02T01:00:00Z"


async def test_check_in_answers_in_utc_with_its_local_date(
    tenants: Tenants, engine: AsyncEngine
) -> None:
    a, _ = tenants
    await _shanghai(a, engine)
    member = await _member(a, "ci")
    now = datetime.now(UTC).replace(microsecond=0)
    local = now.astimezone(timezone(timedelta(hours=8)))
    response = await a.http.post(
        "/v1/checkins", json={"member_id": member, "occurred_at": local.isoformat()}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["occurred_at"] == now.isoformat().replace("+00:00", "Z")
    assert body["local_date"] == local.date().isoformat()


async def test_rule_schedule_and_point_type_dates_in_utc(tenants: Tenants) -> None:
    a, _ = tenants
    schedule = {
        "starts_at": "2026-11-11T00:00:00+08:00",
        "ends_at": "2026-11-11T23:59:59+08:00",
        "days_of_week": [3],
        "hours": [0, 24],
    }
    created = await a.http.post(
        "/v1/rules",
        json={"name": "11.11", "trigger": "custom.visit", "effect": FIXED, "schedule": schedule},
    )
    assert created.status_code == 201, created.text
    expected = {
        "starts_at": "2026-11-10T16:00:00Z",
        "ends_at": "2026-11-11T15:59:59Z",
        "days_of_week": [3],
        "hours": [0, 24],
    }
    assert created.json()["schedule"] == expected
    fetched = (await a.http.get(f"/v1/rules/{created.json()['id']}")).json()
    assert fetched["schedule"] == expected
    point_type = await a.http.post(
        "/v1/point-types",
        json={
            "key": "promo",
            "name": "Promo",
            "expiry_policy": "fixed_date",
            "expiry_date": "2027-01-01T00:00:00+08:00",
        },
    )
    assert point_type.status_code == 201, point_type.text
    assert point_type.json()["expiry_date"] == "2026-12-31T16:00:00Z"
    naive = await a.http.post(
        "/v1/point-types",
        json={
            "key": "naive",
            "name": "Naive",
            "expiry_policy": "fixed_date",
            "expiry_date": "2027-01-01T00:00:00",
        },
    )
    assert naive.status_code == 422


# --- one written form for decimals; money in minor units -------------------------------


async def test_multipliers_and_rates_have_one_written_form(tenants: Tenants) -> None:
    a, _ = tenants
    tier = await a.http.post(
        "/v1/tiers", json={"key": "gold", "name": "Gold", "threshold": 1, "earn_multiplier": "1.50"}
    )
    assert tier.status_code == 201, tier.text
    assert tier.json()["earn_multiplier"] == "1.5"
    [listed] = (await a.http.get("/v1/tiers")).json()["data"]
    assert listed["earn_multiplier"] == "1.5"
    for body, field, written in (
        ({"kind": "multiplier", "factor": "2.50"}, "factor", "2.5"),
        ({"kind": "multiplier", "factor": "100.000"}, "factor", "100"),
        (
            {"kind": "per_unit", "field": "total", "points_per_unit": "0.50"},
            "points_per_unit",
            "0.5",
        ),
        ({"kind": "per_unit", "field": "total", "points_per_unit": "10"}, "points_per_unit", "10"),
    ):
        created = await a.http.post(
            "/v1/rules", json={"name": "d", "trigger": "order.paid", "effect": body}
        )
        assert created.status_code == 201, created.text
        assert created.json()["effect"][field] == written
        fetched = await a.http.get(f"/v1/rules/{created.json()['id']}")
        assert fetched.json()["effect"][field] == written
        patched = await a.http.patch(f"/v1/rules/{created.json()['id']}", json={"effect": body})
        assert patched.json()["effect"][field] == written
    # Numbers, exponents, NaN and values out of range are refused by the schema's pattern.
    for factor in (1.5, "1e1", "NaN", "1", "1.0", "100.5", "0.5", "-2"):
        refused = await a.http.post(
            "/v1/rules",
            json={
                "name": "d",
                "trigger": "order.paid",
                "effect": {"kind": "multiplier", "factor": factor},
            },
        )
        assert refused.status_code == 422, (factor, refused.text)
    for rate in ("0", "0.000", "1000000.5", "Infinity", 2):
        refused = await a.http.post(
            "/v1/rules",
            json={
                "name": "d",
                "trigger": "order.paid",
                "effect": {"kind": "per_unit", "field": "total", "points_per_unit": rate},
            },
        )
        assert refused.status_code == 422, (rate, refused.text)


async def test_a_factor_still_multiplies(tenants: Tenants) -> None:
    a, _ = tenants
    member = await _member(a, "m")
    for effect in (FIXED, {"kind": "multiplier", "factor": "1.50"}):
        body = {"name": "x", "trigger": "custom.visit", "effect": effect}
        assert (await a.http.post("/v1/rules", json=body)).status_code == 201
    event = {"type": "custom.visit", "member_id": member, "occurred_at": "2026-02-01T00:00:00Z"}
    answer = (await a.http.post("/v1/events", json=event)).json()
    assert sorted(t["points"] for t in answer["transactions"]) == [5, 10]


async def _backtest_liability(t: TenantClient, engine: AsyncEngine, currency: str) -> str:
    async with t.db(engine) as session, session.begin():
        await session.execute(
            update(TenantSettings).values(currency=currency, point_value=Decimal("0.0150"))
        )
    draft = {"name": "b", "trigger": "custom.buy", "effect": {"kind": "fixed", "points": 100}}
    response = await t.http.post(
        "/v1/rules/backtest",
        json={"draft": draft, "from": "2026-04-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["currency"] == currency and body["points"] == 100 * len(body["days"])
    assert all(d["liability"] == body["liability"] for d in body["days"])
    liability: str = body["liability"]
    return liability


async def test_backtest_money_has_the_currency_digits(
    tenants: Tenants, engine: AsyncEngine
) -> None:
    a, _ = tenants
    member = await _member(a, "bt")
    event = {"type": "custom.buy", "member_id": member, "occurred_at": "2026-04-02T00:00:00Z"}
    assert (await a.http.post("/v1/events", json=event)).status_code == 201
    # 100 points x 0.015 = 1.5 in each currency, written with its minor-unit digits.
    assert await _backtest_liability(a, engine, "USD") == "1.50"
    assert await _backtest_liability(a, engine, "JPY") == "2"
    assert await _backtest_liability(a, engine, "KWD") == "1.500"


# --- tier benefits --------------------------------------------------------------------------


async def test_tier_benefits(tenants: Tenants) -> None:
    a, b = tenants
    benefits = [
        {"key": "free_shipping", "description": "Free shipping on every order"},
        {"key": "birthday_gift", "description": "A gift in your birthday month"},
    ]
    created = await a.http.post(
        "/v1/tiers", json={"key": "vip", "name": "VIP", "threshold": 10, "benefits": benefits}
    )
    assert created.status_code == 201, created.text
    assert created.json()["benefits"] == benefits
    [listed] = (await a.http.get("/v1/tiers")).json()["data"]
    assert listed["benefits"] == benefits
    plain = await a.http.post("/v1/tiers", json={"key": "plain", "name": "Plain", "threshold": 1})
    assert plain.json()["benefits"] == []
    assert (await b.http.get("/v1/tiers")).json()["data"] == []
    # Keys are the page's to style by; the list is kept as given (a rule the schema cannot
    # state, such as distinct keys, is not one the server makes).
    twice = [*benefits, {"key": "free_shipping", "description": "On returns too"}]
    again = await a.http.post(
        "/v1/tiers", json={"key": "vip2", "name": "VIP 2", "threshold": 20, "benefits": twice}
    )
    assert again.status_code == 201 and again.json()["benefits"] == twice
    too_many = [{"key": f"b{n}", "description": "x"} for n in range(21)]
    for bad, field in (
        (too_many, "benefits"),
        ([{"key": "long", "description": "x" * 301}], "benefits"),
        ([{"key": "Bad Key", "description": "x"}], "benefits"),
        ([{"key": "k", "description": ""}], "benefits"),
        ([{"key": "k", "description": "x", "icon": "star"}], "benefits"),
    ):
        response = await a.http.post(
            "/v1/tiers", json={"key": "t", "name": "T", "threshold": 5, "benefits": bad}
        )
        assert response.status_code == 422, (bad, response.text)
        assert any(e["field"].startswith(field) for e in response.json()["errors"]), response.text


# --- PATCH /v1/point-types/{key} ---------------------------------------------------------


async def _lots(t: TenantClient, engine: AsyncEngine, member: str) -> list[Lot]:
    async with t.db(engine) as session:
        rows = await session.scalars(select(Lot).where(Lot.member_id == member).order_by(Lot.id))
        return list(rows.all())


async def test_patch_the_default_point_type(tenants: Tenants, engine: AsyncEngine) -> None:
    a, b = tenants
    member = await _member(a, "p")
    earn = {"member_id": member, "points": 10, "reason": "r"}
    assert (await a.http.post("/v1/points/earn", json=earn)).status_code == 201
    patched = await a.http.patch(
        "/v1/point-types/points", json={"expiry_policy": "rolling", "expiry_days": 30}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["expiry_policy"] == "rolling" and patched.json()["expiry_days"] == 30
    before = datetime.now(UTC)
    assert (await a.http.post("/v1/points/earn", json=earn)).status_code == 201
    old, new = await _lots(a, engine, member)
    assert old.expires_at is None  # credited before: keeps what it was given
    assert new.expires_at is not None
    assert timedelta(days=29) < new.expires_at - before < timedelta(days=31)
    # The change is this tenant's.
    [theirs] = (await b.http.get("/v1/point-types")).json()["data"]
    assert theirs["expiry_policy"] == "never"
    # Pending from now on; the name too.
    held = await a.http.patch(
        "/v1/point-types/points", json={"pending_policy": "manual", "name": "Coins"}
    )
    assert held.json()["name"] == "Coins" and held.json()["pending_policy"] == "manual"
    assert (await a.http.post("/v1/points/earn", json=earn)).status_code == 201
    balance = (await a.http.get(f"/v1/members/{member}/balance")).json()["balances"][0]
    assert balance["available"] == 20 and balance["pending"] == 10
    fetched = (await a.http.get("/v1/point-types")).json()["data"][0]
    assert fetched == held.json()


async def test_patch_point_type_is_checked_as_on_create(tenants: Tenants) -> None:
    a, b = tenants
    created = await a.http.post(
        "/v1/point-types",
        json={"key": "roll", "name": "Roll", "expiry_policy": "rolling", "expiry_days": 90},
    )
    assert created.status_code == 201
    for body, field in (
        ({"expiry_policy": "fixed_date"}, "expiry_date"),
        ({"expiry_policy": "end_of_period"}, "expiry_period"),
        ({"pending_policy": "days"}, "pending_days"),
        ({"expiry_days": -1}, "expiry_days"),
        ({"expiry_policy": "sometimes"}, "expiry_policy"),
        ({"key": "other"}, "body"),  # unknown field: the key is not changed
    ):
        response = await a.http.patch("/v1/point-types/roll", json=body)
        assert response.status_code == 422, (body, response.text)
        assert any(e["field"] == field for e in response.json()["errors"]), response.text
    cases: list[tuple[dict[str, Any], int]] = [
        ({"expiry_policy": "never", "expiry_days": 5}, 422),
        ({"expiry_policy": "rolling", "expiry_days": 5, "expiry_period": "month"}, 422),
        ({"pending_policy": "manual", "pending_days": 3}, 422),
        # A policy's fields without the policy must fit the stored one.
        ({"expiry_days": None}, 409),
        ({"expiry_period": "year"}, 409),
        ({"pending_days": 3}, 409),
    ]
    for body, status in cases:
        response = await a.http.patch("/v1/point-types/roll", json=body)
        assert response.status_code == status, (body, response.text)
        if status == 409:
            assert response.json()["code"] == "policy_mismatch"
    assert (await a.http.patch("/v1/point-types/roll", json={"expiry_days": 7})).json()[
        "expiry_days"
    ] == 7
    # A policy sent replaces the stored one with what the body gives: a rolling type's days
    # do not become an end_of_period offset.
    moved = await a.http.patch(
        "/v1/point-types/roll", json={"expiry_policy": "end_of_period", "expiry_period": "month"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["expiry_days"] is None and moved.json()["expiry_period"] == "month"
    never = await a.http.patch("/v1/point-types/roll", json={"expiry_policy": "never"})
    assert never.json()["expiry_period"] is None
    assert (await a.http.patch("/v1/point-types/nope", json={"name": "x"})).status_code == 404
    assert (await b.http.patch("/v1/point-types/roll", json={"name": "x"})).status_code == 404
    reader = await _reader(a)
    try:
        response = await reader.patch("/v1/point-types/roll", json={"name": "x"})
        assert response.status_code == 403
    finally:
        await reader.aclose()


async def _reader(t: TenantClient) -> httpx.AsyncClient:
    """A client with a read-only key of the tenant."""
    response = await t.http.post("/v1/api-keys", json={"name": "ro", "scopes": ["points:read"]})
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    return httpx.AsyncClient(
        base_url=str(t.http.base_url), headers={"Authorization": f"Bearer {secret}"}
    )


# --- what the document says --------------------------------------------------------------


async def test_document_describes_these_routes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    for path in ("/v1/events", "/v1/checkins"):
        responses = paths[path]["post"]["responses"]
        assert {"200", "201"} <= set(responses), path
        assert (
            responses["200"]["content"]["application/json"]["schema"]
            == responses["201"]["content"]["application/json"]["schema"]
        )
    for path in (
        "/v1/point-types",
        "/v1/rules",
        "/v1/tiers",
        "/v1/members/{member_id}/tier-history",
    ):
        operation = paths[path]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"limit", "starting_after"} <= names, path
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        page = schemas[schema["$ref"].rsplit("/", 1)[1]]
        assert set(page["required"]) >= {"data", "has_more", "next_cursor"}, path
        assert "422" in operation["responses"], path
    assert "404" in paths["/v1/tiers"]["get"]["responses"]
    assert {"404", "422"} <= set(paths["/v1/point-types/{key}"]["patch"]["responses"])
    assert "404" in paths["/v1/rules/{rule_id}"]["delete"]["responses"]
    schedule = schemas["Schedule"]["properties"]
    assert schedule["days_of_week"]["oneOf"][0]["items"]["enum"] == [1, 2, 3, 4, 5, 6, 7]
    caps = schemas["Caps"]["properties"]
    assert caps["per_member_day"]["minimum"] == 0
    point_type = schemas["PointTypeCreate"]["properties"]
    assert point_type["expiry_days"]["minimum"] == 0
    assert point_type["expiry_days"]["maximum"] == 36500
    assert "pattern" in schemas["MultiplierEffect"]["properties"]["factor"]
    # Every field of these routes' bodies and answers says what it is (an effect's `kind`,
    # the union's tag, is the generator's own), and an event's time says it is 1970 or later.
    for module in (ledger_schemas, rules_schemas, member_schemas):
        for name, cls in vars(module).items():
            if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
                continue
            if cls.__module__ != module.__name__:
                continue
            tag = cls.__struct_config__.tag_field
            for field, spec in schemas[name]["properties"].items():
                assert field == tag or spec.get("description"), f"{name}.{field}"
                kinds = [spec, *spec.get("oneOf", [])]
                given = cls.__struct_config__.forbid_unknown_fields  # a request body
                if given and field == "occurred_at":  # events are dated 1970 or later
                    assert any(k.get("format") == "date-time" for k in kinds)
                    assert spec.get("pattern") == SINCE_1970, f"{name}.{field}"
            if not cls.__struct_config__.forbid_unknown_fields:  # an answer: every field is there
                assert set(schemas[name]["required"]) == set(schemas[name]["properties"]), name


async def test_instants_are_checked_as_written(tenants: Tenants) -> None:
    """The schema's pattern says an event is dated 1970 or later as written; the server
    checks the same."""
    a, _ = tenants
    member = await _member(a, "old")
    for occurred_at, status in (
        ("1969-12-31T23:59:59Z", 422),
        ("1969-12-31T20:00:00-05:00", 422),  # 1970 in UTC, but written in 1969
        ("1970-01-01T08:00:00+14:00", 201),  # 1969 in UTC, written in 1970
    ):
        event = {"type": "custom.visit", "member_id": member, "occurred_at": occurred_at}
        response = await a.http.post("/v1/events", json=event)
        assert response.status_code == status, (occurred_at, response.text)
    document = (await a.http.get("/schema/openapi.json")).json()
    occurred = document["components"]["schemas"]["EventCreate"]["properties"]["occurred_at"]
    assert occurred["pattern"] == "^(19[7-9][0-9]|[2-9][0-9]{3})-"


async def test_rule_with_unknown_point_type_is_a_conflict(tenants: Tenants) -> None:
    a, _ = tenants
    rule = await a.http.post(
        "/v1/rules", json={"name": "r", "trigger": "custom.visit", "effect": FIXED}
    )
    patched = await a.http.patch(f"/v1/rules/{rule.json()['id']}", json={"point_type": "nope"})
    assert patched.status_code == 409 and patched.json()["code"] == "unknown_point_type"
    # The rule is there (a 404 would say it is not).
    assert (await a.http.get(f"/v1/rules/{rule.json()['id']}")).json()["point_type"] == "points"


async def test_instants_at_the_ends_of_the_calendar(tenants: Tenants) -> None:
    """Any RFC 3339 instant is taken; one at or past the ends of Python's calendar (year 1
    or 9999, with its offset) is held a second inside them (it was a 500, or a database
    error answered 422)."""
    a, _ = tenants
    member = await _member(a, "ends")
    for key, expiry_date, stored in (
        ("late", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z"),
        ("early", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:01Z"),
        ("first", "0001-01-01T00:00:00Z", "0001-01-01T00:00:01Z"),
        ("edge", "8999-12-31T23:59:59-14:00", "9000-01-01T13:59:59Z"),
    ):
        body = {"key": key, "name": "K", "expiry_policy": "fixed_date", "expiry_date": expiry_date}
        response = await a.http.post("/v1/point-types", json=body)
        assert response.status_code == 201, (body, response.text)
        assert response.json()["expiry_date"] == stored
        earned = await a.http.post(
            "/v1/points/earn",
            json={"member_id": member, "points": 1, "reason": "x", "point_type": key},
        )
        assert earned.status_code == 201, earned.text
    schedule = {"starts_at": "0001-01-01T00:00:00+14:00", "ends_at": "9999-12-31T23:00:00-14:00"}
    rule = {"name": "r", "trigger": "custom.visit", "effect": FIXED, "schedule": schedule}
    created = await a.http.post("/v1/rules", json=rule)
    assert created.status_code == 201, created.text
    assert created.json()["schedule"] == {
        "starts_at": "0001-01-01T00:00:01Z",
        "ends_at": "9999-12-31T23:59:59Z",
    }
    event = {"type": "custom.visit", "member_id": member, "occurred_at": "2026-01-01T00:00:00Z"}
    assert len((await a.http.post("/v1/events", json=event)).json()["transactions"]) == 1
    draft = {"name": "b", "trigger": "custom.visit", "effect": FIXED}
    window = {"from": "0001-01-01T00:00:00+14:00", "to": "9999-12-31T23:00:00-14:00"}
    response = await a.http.post("/v1/rules/backtest", json={"draft": draft} | window)
    assert response.status_code == 200 and response.json()["events"] == 1, response.text
    for created_gte in ("0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z"):
        history = await a.http.get(
            f"/v1/members/{member}/transactions", params={"created[gte]": created_gte}
        )
        assert history.status_code == 200 and len(history.json()["data"]) == 5, history.text
    for bad in ("0000-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "1700000000"):
        history = await a.http.get(
            f"/v1/members/{member}/transactions", params={"created[lt]": bad}
        )
        assert history.status_code == 422, (bad, history.text)
