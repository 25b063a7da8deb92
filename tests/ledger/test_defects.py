"""Ledger defects: balances past 2^53 (and bigint overflow) refused cleanly, and a release
that says what it released and refuses a second time."""

from pointsmall.ledger.schemas import MAX_POINTS
from tests.conftest import TenantClient
from tests.ledger.conftest import new_member

Tenants = tuple[TenantClient, TenantClient]


async def _balance(tenant: TenantClient, member: str, point_type: str = "points") -> dict[str, int]:
    body = (await tenant.http.get(f"/v1/members/{member}/balance")).json()
    return next(b for b in body["balances"] if b["point_type"] == point_type)


async def test_balances_stop_at_2_to_the_53(ledger: Tenants) -> None:
    a, _ = ledger
    member = await new_member(a)
    earn = {"member_id": member, "reason": "big", "points": MAX_POINTS}
    first = await a.http.post("/v1/points/earn", json=earn)
    assert first.status_code == 201, first.text
    for _ in range(3):  # once refused always refused: no overflow however often it is tried
        again = await a.http.post("/v1/points/earn", json=earn | {"points": 1})
        assert again.status_code == 409, again.text
        assert again.json()["code"] == "balance_limit_exceeded" and again.json()["detail"]
    adjust = await a.http.post("/v1/points/adjust", json=earn | {"points": 1})
    assert adjust.status_code == 409 and adjust.json()["code"] == "balance_limit_exceeded"
    balance = await _balance(a, member)
    assert (balance["available"], balance["lifetime_earned"]) == (MAX_POINTS, MAX_POINTS)
    history = (await a.http.get(f"/v1/members/{member}/transactions")).json()["data"]
    assert [t["points"] for t in history] == [MAX_POINTS]  # nothing half-written


async def test_lifetime_earned_is_capped_and_the_limit_is_inclusive(ledger: Tenants) -> None:
    a, _ = ledger
    member = await new_member(a)
    base = {"member_id": member, "reason": "x"}
    await a.http.post("/v1/points/earn", json=base | {"points": 10})
    spend = (await a.http.post("/v1/points/spend", json=base | {"points": 10})).json()
    # Lifetime earned is capped as well: 10 were earned, so 2^53 - 10 more is the most.
    too_much = await a.http.post("/v1/points/earn", json=base | {"points": MAX_POINTS - 9})
    assert too_much.status_code == 409 and too_much.json()["code"] == "balance_limit_exceeded"
    assert (
        await a.http.post("/v1/points/earn", json=base | {"points": MAX_POINTS - 10})
    ).is_success
    # Giving the spent 10 back reaches 2^53 exactly, which is allowed.
    reverse = await a.http.post(f"/v1/transactions/{spend['id']}/reverse")
    assert reverse.status_code == 201, reverse.text
    assert (await _balance(a, member))["available"] == MAX_POINTS


async def test_release_answers_with_what_it_released(ledger: Tenants) -> None:
    a, b = ledger
    created = await a.http.post(
        "/v1/point-types", json={"key": "held", "name": "Held", "pending_policy": "manual"}
    )
    assert created.status_code == 201, created.text
    member = await new_member(a)
    body = {"member_id": member, "reason": "x", "point_type": "held", "points": 40}
    earn = (await a.http.post("/v1/points/earn", json=body)).json()
    key = {"Idempotency-Key": "release-1"}
    released = await a.http.post(f"/v1/transactions/{earn['id']}/release", headers=key)
    assert released.status_code == 201, released.text
    txn = released.json()
    assert (txn["kind"], txn["points"], txn["reference"]) == ("release", 40, earn["id"])
    replay = await a.http.post(f"/v1/transactions/{earn['id']}/release", headers=key)
    assert replay.json() == txn and replay.headers["idempotent-replayed"] == "true"
    again = await a.http.post(f"/v1/transactions/{earn['id']}/release")
    assert again.status_code == 409 and again.json()["code"] == "already_released"
    balance = await _balance(a, member, "held")
    assert (balance["available"], balance["pending"]) == (40, 0)
    history = (await a.http.get(f"/v1/members/{member}/transactions")).json()["data"]
    assert history[0]["id"] == txn["id"] and history[0]["points"] == 40
    # An earn that was never pending, another tenant's earn, and an unknown id.
    plain = (
        await a.http.post("/v1/points/earn", json={"member_id": member, "reason": "x", "points": 1})
    ).json()
    not_pending = await a.http.post(f"/v1/transactions/{plain['id']}/release")
    assert not_pending.status_code == 409 and not_pending.json()["code"] == "not_pending"
    assert (await b.http.post(f"/v1/transactions/{earn['id']}/release")).status_code == 404
    assert (await a.http.post("/v1/transactions/txn_nope/release")).status_code == 404


async def test_releasing_a_reversed_earn_says_so(ledger: Tenants) -> None:
    a, _ = ledger
    await a.http.post(
        "/v1/point-types", json={"key": "held", "name": "Held", "pending_policy": "manual"}
    )
    member = await new_member(a)
    body = {"member_id": member, "reason": "x", "point_type": "held", "points": 5}
    earn = (await a.http.post("/v1/points/earn", json=body)).json()
    assert (await a.http.post(f"/v1/transactions/{earn['id']}/reverse")).status_code == 201
    released = await a.http.post(f"/v1/transactions/{earn['id']}/release")
    assert released.status_code == 409 and released.json()["code"] == "already_reversed"
