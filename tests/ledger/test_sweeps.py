"""Expiry and pending-release sweeps: set-based, idempotent, each a ledger transaction."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.ledger import schemas, services
from pointsmall.ledger.models import LedgerTransaction, OutboxEvent
from pointsmall.tenancy.models import TenantSettings
from tests.conftest import TenantClient
from tests.ledger.conftest import new_member

Tenants = tuple[TenantClient, TenantClient]


async def _balance(t: TenantClient, member: str, point_type: str) -> dict[str, Any]:
    body = (await t.http.get(f"/v1/members/{member}/balance")).json()
    return next(b for b in body["balances"] if b["point_type"] == point_type)


async def _kinds(t: TenantClient, engine: AsyncEngine) -> list[str]:
    async with t.db(engine) as session:
        rows = await session.scalars(select(LedgerTransaction.kind).order_by(LedgerTransaction.id))
        return list(rows.all())


async def _events(t: TenantClient, engine: AsyncEngine, kind: str) -> int:
    async with t.db(engine) as session:
        count = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == kind)
        )
        return int(count or 0)


async def test_expiry_sweep_is_idempotent(
    ledger: Tenants, engine: AsyncEngine, hot_pool: asyncpg.Pool
) -> None:
    a, _ = ledger
    await a.http.post(
        "/v1/point-types",
        json={"key": "short", "name": "Short", "expiry_policy": "rolling", "expiry_days": 30},
    )
    member = await new_member(a)
    body = {"member_id": member, "reason": "x", "point_type": "short"}
    await a.http.post("/v1/points/earn", json=body | {"points": 100})
    await a.http.post("/v1/points/spend", json=body | {"points": 30})
    balance = await _balance(a, member, "short")
    assert [e["points"] for e in balance["expiring"]] == [70]
    later = datetime.now(UTC) + timedelta(days=31)
    assert await services.sweep(hot_pool, a.schema, later) == (0, 1)
    assert await services.sweep(hot_pool, a.schema, later) == (0, 0)  # twice changes nothing
    balance = await _balance(a, member, "short")
    assert balance["available"] == 0 and balance["lifetime_earned"] == 100
    assert await _kinds(a, engine) == ["earn", "spend", "expire"]
    assert await _events(a, engine, "points.expired") == 1


async def test_reversed_spend_of_expired_lot_goes_to_breakage(
    ledger: Tenants, hot_pool: asyncpg.Pool
) -> None:
    a, _ = ledger
    await a.http.post(
        "/v1/point-types",
        json={"key": "brief", "name": "Brief", "expiry_policy": "rolling", "expiry_days": 1},
    )
    member = await new_member(a)
    body = {"member_id": member, "reason": "x", "point_type": "brief"}
    await a.http.post("/v1/points/earn", json=body | {"points": 50})
    spend = (await a.http.post("/v1/points/spend", json=body | {"points": 20})).json()
    later = datetime.now(UTC) + timedelta(days=2)
    await services.sweep(hot_pool, a.schema, later)
    reversed_ = await services.reverse(
        hot_pool,
        a.schema,
        spend["id"],
        schemas.ReverseCreate(reason="refund"),
        granted_by="t",
        now=later,
    )
    assert reversed_.transaction.points == 0  # nothing back to the member: the lot had expired
    assert (await _balance(a, member, "brief"))["available"] == 0


async def test_pending_days_then_release(
    ledger: Tenants, engine: AsyncEngine, hot_pool: asyncpg.Pool
) -> None:
    a, _ = ledger
    await a.http.post(
        "/v1/point-types",
        json={"key": "held", "name": "Held", "pending_policy": "days", "pending_days": 7},
    )
    member = await new_member(a)
    body = {"member_id": member, "reason": "x", "point_type": "held"}
    await a.http.post("/v1/points/earn", json=body | {"points": 40})
    balance = await _balance(a, member, "held")
    assert (balance["available"], balance["pending"]) == (0, 40)
    spend = await a.http.post("/v1/points/spend", json=body | {"points": 1})
    assert spend.status_code == 409  # pending points cannot be spent
    assert await services.sweep(hot_pool, a.schema, datetime.now(UTC) + timedelta(days=6)) == (0, 0)
    assert await services.sweep(hot_pool, a.schema, datetime.now(UTC) + timedelta(days=8)) == (1, 0)
    assert await services.sweep(hot_pool, a.schema, datetime.now(UTC) + timedelta(days=9)) == (0, 0)
    balance = await _balance(a, member, "held")
    assert (balance["available"], balance["pending"]) == (40, 0)
    assert await _events(a, engine, "points.pending_released") == 1


async def test_manual_release(ledger: Tenants) -> None:
    a, _ = ledger
    await a.http.post(
        "/v1/point-types", json={"key": "manual", "name": "Manual", "pending_policy": "manual"}
    )
    member = await new_member(a)
    body = {"member_id": member, "reason": "x", "point_type": "manual"}
    earn = (await a.http.post("/v1/points/earn", json=body | {"points": 15})).json()
    assert (await _balance(a, member, "manual"))["pending"] == 15
    released = await a.http.post(f"/v1/transactions/{earn['id']}/release")
    assert released.status_code == 201, released.text
    assert released.json()["kind"] == "release" and released.json()["reference"] == earn["id"]
    assert (await _balance(a, member, "manual"))["available"] == 15
    again = await a.http.post(f"/v1/transactions/{earn['id']}/release")
    assert again.status_code == 409 and again.json()["code"] == "already_released"


async def test_point_type_validation(ledger: Tenants) -> None:
    a, _ = ledger
    for body in (
        {"key": "r", "name": "R", "expiry_policy": "rolling"},
        {"key": "p", "name": "P", "pending_policy": "days"},
        {"key": "e", "name": "E", "expiry_policy": "end_of_period"},
        {"key": "Bad", "name": "B"},
        {"key": "x", "name": "X", "expiry_days": -1},
    ):
        response = await a.http.post("/v1/point-types", json=body)
        assert response.status_code == 422, (body, response.text)
    await a.http.post("/v1/point-types", json={"key": "dup", "name": "D"})
    again = await a.http.post("/v1/point-types", json={"key": "dup", "name": "D"})
    assert again.status_code == 409 and again.json()["code"] == "point_type_exists"
    keys = [p["key"] for p in (await a.http.get("/v1/point-types")).json()["data"]]
    assert "points" in keys and "dup" in keys


async def test_end_of_period_expiry_in_tenant_time_zone(
    ledger: Tenants, engine: AsyncEngine
) -> None:
    """`end_of_period` month: points expire at the start of the next month, local time."""
    a, _ = ledger
    async with a.db(engine) as session, session.begin():
        await session.execute(update(TenantSettings).values(timezone="Asia/Shanghai"))
    await a.http.post(
        "/v1/point-types",
        json={
            "key": "monthly",
            "name": "Monthly",
            "expiry_policy": "end_of_period",
            "expiry_period": "month",
            "expiry_days": 0,
        },
    )
    member = await new_member(a)
    await a.http.post(
        "/v1/points/earn",
        json={"member_id": member, "points": 9, "reason": "x", "point_type": "monthly"},
    )
    [bucket] = (await _balance(a, member, "monthly"))["expiring"]
    expires = datetime.fromisoformat(bucket["expires_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    now_local = datetime.now(ZoneInfo("Asia/Shanghai"))
    first_of_next = (now_local.replace(day=28) + timedelta(days=4)).replace(day=1)
    assert (expires.year, expires.month, expires.day, expires.hour, expires.minute) == (
        first_of_next.year,
        first_of_next.month,
        1,
        0,
        0,
    )


async def test_end_of_quarter_expiry(ledger: Tenants, engine: AsyncEngine) -> None:
    """`end_of_period` quarter: points expire when the next quarter starts, local time (a
    credit of such a type used to fail: `1 quarter` is no PostgreSQL interval)."""
    a, _ = ledger
    async with a.db(engine) as session, session.begin():
        await session.execute(update(TenantSettings).values(timezone="Asia/Shanghai"))
    created = await a.http.post(
        "/v1/point-types",
        json={
            "key": "quarterly",
            "name": "Quarterly",
            "expiry_policy": "end_of_period",
            "expiry_period": "quarter",
        },
    )
    assert created.status_code == 201, created.text
    member = await new_member(a)
    earned = await a.http.post(
        "/v1/points/earn",
        json={"member_id": member, "points": 9, "reason": "x", "point_type": "quarterly"},
    )
    assert earned.status_code == 201, earned.text
    [bucket] = (await _balance(a, member, "quarterly"))["expiring"]
    expires = datetime.fromisoformat(bucket["expires_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    now_local = datetime.now(ZoneInfo("Asia/Shanghai"))
    quarter_month = (now_local.month - 1) // 3 * 3 + 1
    year, month = (
        (now_local.year + 1, 1) if quarter_month == 10 else (now_local.year, quarter_month + 3)
    )
    assert (expires.year, expires.month, expires.day, expires.hour, expires.minute) == (
        year,
        month,
        1,
        0,
        0,
    )
