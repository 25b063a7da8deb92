"""Earn, spend, adjust, reverse through real HTTP; bad input writes nothing."""

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.ledger.models import LedgerTransaction, Lot
from tests.conftest import TenantClient
from tests.ledger.conftest import new_member

Tenants = tuple[TenantClient, TenantClient]


async def _balance(t: TenantClient, member: str, point_type: str = "points") -> dict[str, Any]:
    body = (await t.http.get(f"/v1/members/{member}/balance")).json()
    return next(b for b in body["balances"] if b["point_type"] == point_type)


async def _txn_count(t: TenantClient, engine: AsyncEngine) -> int:
    async with t.db(engine) as session:
        return int(await session.scalar(select(func.count()).select_from(LedgerTransaction)) or 0)


async def test_earn_spend_balance_history(ledger: Tenants) -> None:
    a, _ = ledger
    member = await new_member(a)
    earned = await a.http.post(
        "/v1/points/earn", json={"member_id": member, "points": 100, "reason": "order"}
    )
    assert earned.status_code == 201, earned.text
    txn = earned.json()
    assert txn["id"].startswith("txn_") and txn["kind"] == "earn" and txn["points"] == 100
    spent = await a.http.post(
        "/v1/points/spend",
        json={"member_id": member, "points": 30, "reason": "coupon", "reference": "ord_1"},
    )
    assert spent.status_code == 201 and spent.json()["points"] == -30
    balance = await _balance(a, member)
    assert balance == {
        "point_type": "points",
        "available": 70,
        "pending": 0,
        "lifetime_earned": 100,
        "expiring": [],
    }
    history = (await a.http.get(f"/v1/members/{member}/transactions")).json()
    assert [t["kind"] for t in history["data"]] == ["spend", "earn"]
    only_earns = (
        await a.http.get(f"/v1/members/{member}/transactions", params={"kind": "earn"})
    ).json()
    assert [t["id"] for t in only_earns["data"]] == [txn["id"]]


async def test_insufficient_points_writes_nothing(ledger: Tenants, engine: AsyncEngine) -> None:
    a, _ = ledger
    member = await new_member(a)
    await a.http.post("/v1/points/earn", json={"member_id": member, "points": 10, "reason": "x"})
    before = await _txn_count(a, engine)
    short = await a.http.post(
        "/v1/points/spend", json={"member_id": member, "points": 11, "reason": "x"}
    )
    assert short.status_code == 409 and short.json()["code"] == "insufficient_points"
    assert await _txn_count(a, engine) == before
    assert (await _balance(a, member))["available"] == 10


async def test_spend_takes_soonest_expiring_first(ledger: Tenants, engine: AsyncEngine) -> None:
    a, _ = ledger
    created = await a.http.post(
        "/v1/point-types",
        json={"key": "promo", "name": "Promo", "expiry_policy": "rolling", "expiry_days": 30},
    )
    assert created.status_code == 201, created.text
    member = await new_member(a)
    await a.http.post(
        "/v1/points/earn",
        json={"member_id": member, "points": 50, "reason": "a", "point_type": "promo"},
    )
    async with a.db(engine) as session, session.begin():
        # Make the first lot expire later than the second one will.
        await session.execute(update(Lot).values(expires_at=func.now() + timedelta(days=90)))
    await a.http.post(
        "/v1/points/earn",
        json={"member_id": member, "points": 50, "reason": "b", "point_type": "promo"},
    )
    await a.http.post(
        "/v1/points/spend",
        json={"member_id": member, "points": 60, "reason": "c", "point_type": "promo"},
    )
    balance = await _balance(a, member, "promo")
    assert balance["available"] == 40
    # The 30-day lot was drained first; 40 remain in the 90-day lot.
    assert [e["points"] for e in balance["expiring"]] == [40]


async def test_adjust_needs_reason_and_sign(ledger: Tenants) -> None:
    a, _ = ledger
    member = await new_member(a)
    up = await a.http.post(
        "/v1/points/adjust", json={"member_id": member, "points": 25, "reason": "goodwill"}
    )
    assert up.status_code == 201 and up.json()["kind"] == "adjust" and up.json()["points"] == 25
    down = await a.http.post(
        "/v1/points/adjust", json={"member_id": member, "points": -5, "reason": "typo"}
    )
    assert down.status_code == 201 and down.json()["points"] == -5
    zero = await a.http.post(
        "/v1/points/adjust", json={"member_id": member, "points": 0, "reason": "x"}
    )
    assert zero.status_code == 422
    no_reason = await a.http.post("/v1/points/adjust", json={"member_id": member, "points": 5})
    assert no_reason.status_code == 422
    assert (await _balance(a, member))["available"] == 20


async def test_reverse_spend_and_earn(ledger: Tenants) -> None:
    a, _ = ledger
    member = await new_member(a)
    earn = (
        await a.http.post(
            "/v1/points/earn", json={"member_id": member, "points": 100, "reason": "x"}
        )
    ).json()
    spend = (
        await a.http.post(
            "/v1/points/spend", json={"member_id": member, "points": 40, "reason": "x"}
        )
    ).json()
    back = await a.http.post(f"/v1/transactions/{spend['id']}/reverse", json={"reason": "refund"})
    assert back.status_code == 201, back.text
    assert back.json()["points"] == 40 and back.json()["reverses"] == spend["id"]
    assert (await _balance(a, member))["available"] == 100
    twice = await a.http.post(f"/v1/transactions/{spend['id']}/reverse", json={})
    assert twice.status_code == 409 and twice.json()["code"] == "already_reversed"
    of_reversal = await a.http.post(f"/v1/transactions/{back.json()['id']}/reverse")
    assert (
        of_reversal.status_code == 409 and of_reversal.json()["code"] == "cannot_reverse_reversal"
    )
    undo_earn = await a.http.post(f"/v1/transactions/{earn['id']}/reverse")
    assert undo_earn.status_code == 201 and undo_earn.json()["points"] == -100
    balance = await _balance(a, member)
    assert balance["available"] == 0 and balance["lifetime_earned"] == 100


async def test_reverse_spent_earn_without_debt_is_409(ledger: Tenants, engine: AsyncEngine) -> None:
    a, _ = ledger
    member = await new_member(a)
    earn = (
        await a.http.post(
            "/v1/points/earn", json={"member_id": member, "points": 100, "reason": "x"}
        )
    ).json()
    await a.http.post("/v1/points/spend", json={"member_id": member, "points": 30, "reason": "x"})
    before = await _txn_count(a, engine)
    refused = await a.http.post(f"/v1/transactions/{earn['id']}/reverse")
    assert refused.status_code == 409 and refused.json()["code"] == "points_already_spent"
    assert await _txn_count(a, engine) == before
    assert (await _balance(a, member))["available"] == 70


async def test_reverse_spent_earn_with_debt(ledger: Tenants) -> None:
    a, _ = ledger
    await a.http.post(
        "/v1/point-types", json={"key": "cash_back", "name": "Cash back", "allow_negative": True}
    )
    member = await new_member(a)
    earn = {"member_id": member, "reason": "x", "point_type": "cash_back"}
    first = (await a.http.post("/v1/points/earn", json=earn | {"points": 100})).json()
    await a.http.post("/v1/points/spend", json=earn | {"points": 80})
    await a.http.post("/v1/points/earn", json=earn | {"points": 10})
    clawback = await a.http.post(
        f"/v1/transactions/{first['id']}/reverse", json={"reason": "refund"}
    )
    assert clawback.status_code == 201, clawback.text
    assert clawback.json()["points"] == -100
    assert (await _balance(a, member, "cash_back"))["available"] == -70
    # The next earn pays the debt first.
    await a.http.post("/v1/points/earn", json=earn | {"points": 100})
    assert (await _balance(a, member, "cash_back"))["available"] == 30


MEMBERLESS = "mem_0000000000000000000000zzzz"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/points/earn", {"points": 0, "reason": "x"}, 422, "validation_error"),
        ("/v1/points/earn", {"points": -5, "reason": "x"}, 422, "validation_error"),
        ("/v1/points/earn", {"points": 1.5, "reason": "x"}, 422, "validation_error"),
        ("/v1/points/earn", {"points": "10", "reason": "x"}, 422, "validation_error"),
        ("/v1/points/earn", {"points": 2**53 + 1, "reason": "x"}, 422, "validation_error"),
        ("/v1/points/earn", {"points": 10**30, "reason": "x"}, 422, "validation_error"),
        ("/v1/points/earn", {"points": 5}, 422, "validation_error"),
        (
            "/v1/points/earn",
            {"points": 5, "reason": "x", "point_type": "nope"},
            404,
            "not_found",
        ),
        (
            "/v1/points/earn",
            {"points": 5, "reason": "x", "point_type": "Bad Type"},
            422,
            "validation_error",
        ),
        (
            "/v1/points/earn",
            {"points": 5, "reason": "x", "member_id": MEMBERLESS},
            404,
            "not_found",
        ),
        (
            "/v1/points/spend",
            {"points": 5, "reason": "x", "member_id": MEMBERLESS},
            404,
            "not_found",
        ),
        ("/v1/points/spend", {"points": 5, "reason": "x", "extra": 1}, 422, "validation_error"),
    ],
)
async def test_bad_ledger_input_writes_nothing(
    ledger: Tenants, engine: AsyncEngine, path: str, body: dict[str, object], status: int, code: str
) -> None:
    a, _ = ledger
    member = await new_member(a)
    await a.http.post("/v1/points/earn", json={"member_id": member, "points": 10, "reason": "seed"})
    before = await _txn_count(a, engine)
    response = await a.http.post(path, json={"member_id": member} | body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert await _txn_count(a, engine) == before
    assert (await _balance(a, member))["available"] == 10


async def test_suspended_member_cannot_spend(ledger: Tenants) -> None:
    a, _ = ledger
    member = await new_member(a)
    await a.http.post("/v1/points/earn", json={"member_id": member, "points": 10, "reason": "x"})
    await a.http.patch(f"/v1/members/{member}", json={"status": "suspended"})
    refused = await a.http.post(
        "/v1/points/spend", json={"member_id": member, "points": 5, "reason": "x"}
    )
    assert refused.status_code == 409 and refused.json()["code"] == "member_suspended"


async def test_unknown_or_foreign_transaction_is_404(ledger: Tenants) -> None:
    a, b = ledger
    member = await new_member(a)
    earn = (
        await a.http.post(
            "/v1/points/earn", json={"member_id": member, "points": 10, "reason": "x"}
        )
    ).json()
    for t, txn in ((b, earn["id"]), (a, "txn_0000"), (a, "nonsense")):
        response = await t.http.post(f"/v1/transactions/{txn}/reverse")
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert (await b.http.get(f"/v1/members/{member}/balance")).status_code == 404
    foreign = await b.http.post(
        "/v1/points/earn", json={"member_id": member, "points": 10, "reason": "x"}
    )
    assert foreign.status_code == 404


async def test_200_concurrent_spends(ledger: Tenants) -> None:
    a, _ = ledger
    member = await new_member(a)
    await a.http.post("/v1/points/earn", json={"member_id": member, "points": 1000, "reason": "x"})
    responses = await asyncio.gather(
        *(
            a.http.post("/v1/points/spend", json={"member_id": member, "points": 10, "reason": "x"})
            for _ in range(200)
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 100
    assert statuses.count(409) == 100
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"insufficient_points"}
    assert (await _balance(a, member))["available"] == 0


async def test_50_concurrent_requests_one_key(ledger: Tenants, engine: AsyncEngine) -> None:
    a, _ = ledger
    member = await new_member(a)
    before = await _txn_count(a, engine)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"member_id": member, "points": 7, "reason": "once"}
    responses = await asyncio.gather(
        *(a.http.post("/v1/points/earn", json=body, headers=key) for _ in range(50))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 49
    assert await _txn_count(a, engine) == before + 1
    clash = await a.http.post("/v1/points/earn", json=body | {"points": 8}, headers=key)
    assert clash.status_code == 409 and clash.json()["code"] == "idempotency_conflict"
    assert (await _balance(a, member))["available"] == 7
