"""Daily check-ins: once per member per local day, streaks that rules can reward."""

from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]


async def test_streak_reward_on_day_seven(tenants: Tenants) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "daily"})).json()["id"]
    await a.http.post(
        "/v1/rules",
        json={"name": "check-in", "trigger": "checkin", "effect": {"kind": "fixed", "points": 5}},
    )
    await a.http.post(
        "/v1/rules",
        json={
            "name": "week streak",
            "trigger": "checkin",
            "condition": "member.streak == 7 && event.data.streak == 7",
            "effect": {"kind": "fixed", "points": 100},
        },
    )
    earned = []
    for day in range(1, 9):
        response = await a.http.post(
            "/v1/checkins",
            json={"member_id": member, "occurred_at": f"2026-03-{day:02d}T09:00:00Z"},
        )
        assert response.status_code == 201, response.text
        earned.append(sum(t["points"] for t in response.json()["transactions"]))
    assert earned == [5, 5, 5, 5, 5, 5, 105, 5]

    again = await a.http.post(
        "/v1/checkins", json={"member_id": member, "occurred_at": "2026-03-08T23:00:00Z"}
    )
    assert again.status_code == 409 and again.json()["code"] == "already_checked_in"

    # A missed day breaks the run: the next check-in starts at 1.
    gap = await a.http.post(
        "/v1/checkins", json={"member_id": member, "occurred_at": "2026-03-10T09:00:00Z"}
    )
    simulated = await a.http.post(
        "/v1/rules/simulate",
        json={
            "event": {
                "type": "checkin",
                "member_id": member,
                "occurred_at": "2026-03-10T10:00:00Z",
                "data": {"streak": 1},
            }
        },
    )
    assert gap.status_code == 201 and simulated.status_code == 200
    week = next(v for v in simulated.json()["verdicts"] if v["points"] == 0)
    assert week["reason"] == "condition_false"
