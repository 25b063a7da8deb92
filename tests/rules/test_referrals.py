"""Referrals: a code per member; referral.completed rewards both sides by rule; no
self-referral, nor between members who share an email."""

import httpx

from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]


async def _referral(t: TenantClient, referee: str, code: str) -> httpx.Response:
    return await t.http.post(
        "/v1/events",
        json={
            "type": "referral.completed",
            "member_id": referee,
            "occurred_at": "2026-06-01T00:00:00Z",
            "data": {"referral_code": code},
        },
    )


async def test_both_sides_rewarded_once(tenants: Tenants) -> None:
    a, _ = tenants
    await a.http.post(
        "/v1/rules",
        json={
            "name": "referrer",
            "trigger": "referral.completed",
            "condition": 'event.data.side == "referrer"',
            "effect": {"kind": "fixed", "points": 500},
        },
    )
    await a.http.post(
        "/v1/rules",
        json={
            "name": "referee",
            "trigger": "referral.completed",
            "condition": 'event.data.side == "referee"',
            "effect": {"kind": "fixed", "points": 200},
        },
    )
    referrer = (
        await a.http.post("/v1/members", json={"external_id": "old", "email": "old@x.example"})
    ).json()
    referee = (
        await a.http.post("/v1/members", json={"external_id": "new", "email": "new@x.example"})
    ).json()
    assert referrer["referral_code"] and len(referrer["referral_code"]) == 8
    done = await _referral(a, referee["id"], referrer["referral_code"].lower())
    assert done.status_code == 201, done.text
    by_member = {t["member_id"]: t["points"] for t in done.json()["transactions"]}
    assert by_member == {referrer["id"]: 500, referee["id"]: 200}
    again = await _referral(a, referee["id"], referrer["referral_code"])
    assert again.status_code == 200
    for member, points in ((referrer["id"], 500), (referee["id"], 200)):
        balance = (await a.http.get(f"/v1/members/{member}/balance")).json()["balances"][0]
        assert balance["available"] == points


async def test_self_and_same_email_referrals_refused(tenants: Tenants) -> None:
    a, _ = tenants
    me = (
        await a.http.post("/v1/members", json={"external_id": "me", "email": "Twin@x.example"})
    ).json()
    twin = (
        await a.http.post("/v1/members", json={"external_id": "twin", "email": "twin@X.example"})
    ).json()
    for referee in (me, twin):
        refused = await _referral(a, referee["id"], me["referral_code"])
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid_referral"
    unknown = await _referral(a, twin["id"], "NOSUCHCD")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
