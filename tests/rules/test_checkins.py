"""Daily check-ins: once per member per local day, streaks that rules can reward."""

from datetime import UTC, datetime, timedelta

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
    # Eight days in a row, from ten days ago: the tenant allows check-ins dated back that far.
    await a.http.patch("/v1/settings", json={"checkin_backdate_days": 12})
    start = datetime.now(UTC).date() - timedelta(days=10)

    def day(n: int) -> str:
        return (start + timedelta(days=n - 1)).isoformat()

    earned = []
    for n in range(1, 9):
        response = await a.http.post(
            "/v1/checkins", json={"member_id": member, "occurred_at": f"{day(n)}T09:00:00Z"}
        )
        assert response.status_code == 201, response.text
        earned.append(sum(t["points"] for t in response.json()["transactions"]))
    assert earned == [5, 5, 5, 5, 5, 5, 105, 5]

    again = await a.http.post(
        "/v1/checkins", json={"member_id": member, "occurred_at": f"{day(8)}T23:00:00Z"}
    )
    assert again.status_code == 409 and again.json()["code"] == "already_checked_in"

    # A missed day breaks the run: the next check-in starts at 1.
    gap = await a.http.post(
        "/v1/checkins", json={"member_id": member, "occurred_at": f"{day(10)}T09:00:00Z"}
    )
    simulated = await a.http.post(
        "/v1/rules/simulate",
        json={
            "event": {
                "type": "checkin",
                "member_id": member,
                "occurred_at": f"{day(10)}T10:00:00Z",
                "data": {"streak": 1},
            }
        },
    )
    assert gap.status_code == 201 and simulated.status_code == 200
    week = next(v for v in simulated.json()["verdicts"] if v["points"] == 0)
    assert week["reason"] == "condition_false"
