"""Delivery with the clock in the test's hand: the retry schedule, Retry-After, 3xx, 410,
five days of failure, rollbacks send nothing, retries keep their `webhook-id`."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.jobs import prune_history
from pointsmall.settings import Settings
from pointsmall.webhooks.keys import secret_box
from pointsmall.webhooks.relay import relay_schema
from pointsmall_webhooks.delivery import Attempted, deliver
from pointsmall_webhooks.policy import RETRY_DELAYS
from pointsmall_webhooks.sender import Sender
from pointsmall_webhooks.signing import verify
from tests.conftest import TenantClient, free_port
from tests.webhooks.receiver import receiving

Tenants = tuple[TenantClient, TenantClient]


@pytest.fixture
async def http() -> Any:
    pool = Sender(allow_private=True)
    yield pool
    await pool.aclose()


async def _earn(t: TenantClient, points: int, name: str = "hooked") -> str:
    found = (await t.http.get("/v1/members", params={"external_id": name})).json()["data"]
    member = (
        found[0]["id"]
        if found
        else (await t.http.post("/v1/members", json={"external_id": name})).json()["id"]
    )
    response = await t.http.post(
        "/v1/points/earn", json={"member_id": member, "points": points, "reason": "test"}
    )
    return str(response.json().get("id"))


async def _endpoint(t: TenantClient, url: str, **fields: Any) -> dict[str, Any]:
    created = await t.http.post("/v1/webhook-endpoints", json={"url": url} | fields)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def _relay(pool: asyncpg.Pool, t: TenantClient) -> list[tuple[str, str]]:
    async with pool.acquire() as conn:
        return (await relay_schema(conn, t.schema, t.id)).pairs


class Clock:
    """Runs deliveries as the worker would, at the times the test chooses."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        http: Sender,
        settings: Settings,
        t: TenantClient,
    ) -> None:
        self.pool, self.http, self.settings, self.t = pool, http, settings, t

    async def attempt(self, pair: tuple[str, str], now: datetime) -> Attempted | None:
        return await deliver(
            self.pool, self.http, secret_box(self.settings), self.t.schema, *pair, now=now
        )

    async def due(self, now: datetime) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(
            f'SELECT message_id, endpoint_id FROM "{self.t.schema}".webhook_deliveries'
            " WHERE status = 'pending' AND next_attempt_at <= $1",
            now,
        )
        return [(r["message_id"], r["endpoint_id"]) for r in rows]


async def test_receiver_down_then_back_follows_the_schedule(
    tenants: Tenants, hot_pool: asyncpg.Pool, http: Sender, settings: Settings
) -> None:
    a, _ = tenants
    port = free_port()  # nothing listens here yet: the receiver is down
    endpoint = await _endpoint(a, f"http://127.0.0.1:{port}/hook", event_types=["points.*"])
    await _earn(a, 100)
    refused = await a.http.post(  # rolled back: writes no event, so nothing is ever sent
        "/v1/points/spend",
        json={
            "member_id": (await a.http.get("/v1/members")).json()["data"][0]["id"],
            "points": 10**6,
            "reason": "x",
        },
    )
    assert refused.status_code == 409
    pairs = await _relay(hot_pool, a)
    assert len(pairs) == 1 and pairs[0][1] == endpoint["id"]
    assert await _relay(hot_pool, a) == []  # published once
    clock = Clock(hot_pool, http, settings, a)
    t = datetime(2030, 1, 1, tzinfo=UTC)
    schedule = []
    for expected_delay in RETRY_DELAYS[:5]:  # down for 5 s + 5 min + 30 min + 2 h + 5 h
        assert await clock.due(t) == pairs
        done = await clock.attempt(pairs[0], t)
        assert done is not None and done.verdict.outcome == "retry" and done.status is None
        assert done.verdict.retry_at == t + expected_delay
        assert await clock.due(t + expected_delay - timedelta(seconds=1)) == []
        schedule.append(done.verdict.retry_at - t)
        t = t + expected_delay
    assert schedule == RETRY_DELAYS[:5]
    async with receiving(port=port) as receiver:  # back up
        done = await clock.attempt(pairs[0], t)
        assert done is not None and done.verdict.outcome == "succeeded" and done.attempt == 6
        assert await clock.due(t + timedelta(days=9)) == []
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.headers["webhook-id"] == pairs[0][0]
    secret = (await a.http.get(f"/v1/webhook-endpoints/{endpoint['id']}/secret")).json()["secret"]
    verify(secret, got.headers, got.body, now=t.timestamp())
    log = (await a.http.get(f"/v1/webhook-messages/{pairs[0][0]}")).json()
    assert [x["outcome"] for x in log["attempts"]] == ["retry"] * 5 + ["succeeded"]
    assert (
        log["deliveries"][0]["status"] == "succeeded" and log["payload"]["type"] == "points.earned"
    )
    listed = (await a.http.get(f"/v1/webhook-endpoints/{endpoint['id']}/messages")).json()["data"]
    assert [(m["id"], m["attempts"]) for m in listed] == [(pairs[0][0], 6)]


async def test_member_created_is_sent_only_when_it_commits(
    tenants: Tenants, hot_pool: asyncpg.Pool, http: Sender, settings: Settings
) -> None:
    a, _ = tenants
    async with receiving() as receiver:
        await _endpoint(a, receiver.url, event_types=["member.*"])
        created = await a.http.post("/v1/members", json={"external_id": "new-one"})
        duplicate = await a.http.post("/v1/members", json={"external_id": "new-one"})
        assert duplicate.status_code == 409  # rolled back: no second event
        await _earn(a, 5, "new-one")  # points.earned: not matched by member.*
        pairs = await _relay(hot_pool, a)
        assert len(pairs) == 1
        await Clock(hot_pool, http, settings, a).attempt(pairs[0], datetime.now(UTC))
    body = json.loads(receiver.received[0].body)
    assert body["type"] == "member.created" and body["data"]["id"] == created.json()["id"]
    assert body["data"]["external_id"] == "new-one" and body["tenant_id"] == a.id


async def test_every_retry_of_a_message_carries_the_same_id(
    tenants: Tenants, hot_pool: asyncpg.Pool, http: Sender, settings: Settings
) -> None:
    a, _ = tenants
    async with receiving() as receiver:
        receiver.status = 500
        await _endpoint(a, receiver.url)
        await _earn(a, 5)
        pairs = await _relay(hot_pool, a)
        clock = Clock(hot_pool, http, settings, a)
        t = datetime.now(UTC)
        for delay in RETRY_DELAYS[:3]:
            await clock.attempt(pairs[0], t)
            t += delay
        receiver.status = 204
        assert (await clock.attempt(pairs[0], t)).verdict.outcome == "succeeded"  # type: ignore[union-attr]
    assert receiver.ids() == [pairs[0][0]] * 4
    assert len({r.headers["webhook-timestamp"] for r in receiver.received}) == 4


async def test_retry_after_3xx_and_410(
    tenants: Tenants, hot_pool: asyncpg.Pool, http: Sender, settings: Settings
) -> None:
    a, _ = tenants
    async with receiving() as receiver:
        endpoint = await _endpoint(a, receiver.url)
        clock = Clock(hot_pool, http, settings, a)
        t = datetime.now(UTC)
        receiver.status, receiver.headers = 429, [(b"retry-after", b"3600")]
        await _earn(a, 1)
        first = (await _relay(hot_pool, a))[0]
        done = await clock.attempt(first, t)
        assert done is not None and done.verdict.retry_at == t + timedelta(hours=1)
        receiver.status, receiver.headers = 503, [(b"retry-after", b"2")]
        done = await clock.attempt(first, t)  # shorter than the schedule's 5 min: schedule wins
        assert done is not None and done.verdict.retry_at == t + timedelta(minutes=5)
        receiver.status, receiver.headers = 302, [(b"location", b"http://127.0.0.1:1/")]
        done = await clock.attempt(first, t)
        assert done is not None and done.verdict.outcome == "retry" and done.status == 302
        assert len(receiver.received) == 3  # the redirect was not followed
        receiver.status, receiver.headers = 410, []
        done = await clock.attempt(first, t)
        assert done is not None and done.verdict.outcome == "endpoint_gone"
    after = (await a.http.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert (after["enabled"], after["disabled_reason"]) == (False, "gone")
    notices = (await a.http.get(f"/v1/webhook-endpoints/{endpoint['id']}/notices")).json()["data"]
    assert [n["kind"] for n in notices] == ["endpoint_disabled"]
    await _earn(a, 1)
    assert await _relay(hot_pool, a) == []  # a disabled endpoint is sent nothing new


async def test_five_days_of_failure_disable_the_endpoint(
    tenants: Tenants, hot_pool: asyncpg.Pool, http: Sender, settings: Settings
) -> None:
    a, _ = tenants
    endpoint = await _endpoint(a, f"http://127.0.0.1:{free_port()}/down")
    clock = Clock(hot_pool, http, settings, a)
    t = datetime(2031, 1, 1, tzinfo=UTC)
    for day in range(6):
        await _earn(a, 1)
        pair = (await _relay(hot_pool, a))[0]
        done = await clock.attempt(pair, t + timedelta(days=day))
        assert done is not None and done.verdict.outcome == "retry"
    after = (await a.http.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert (after["enabled"], after["disabled_reason"]) == (False, "failing")
    assert await clock.due(t + timedelta(days=30)) == []  # what waited was cancelled
    enabled = await a.http.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": True})
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None


async def test_rotation_signs_with_both_secrets_for_a_day(
    tenants: Tenants, hot_pool: asyncpg.Pool, http: Sender, settings: Settings
) -> None:
    a, b = tenants
    async with receiving() as receiver:
        endpoint = await _endpoint(a, receiver.url, event_types=["points.earned"])
        old = endpoint["secret"]
        rotated = (
            await a.http.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")
        ).json()
        assert rotated["secret"] != old and rotated["previous_secret_expires_at"]
        await _earn(a, 3)
        pair = (await _relay(hot_pool, a))[0]
        clock = Clock(hot_pool, http, settings, a)
        now = datetime.now(UTC)
        await clock.attempt(pair, now)
        got = receiver.received[0]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        verify(old, got.headers, got.body)
        verify(rotated["secret"], got.headers, got.body)
        # A day later only the new secret signs.
        await a.http.post(f"/v1/webhook-messages/{pair[0]}/retry", json={})
        await clock.attempt(pair, now + timedelta(hours=24, seconds=1))
        assert len(receiver.received[1].headers["webhook-signature"].split(" ")) == 1
    assert (await b.http.get(f"/v1/webhook-endpoints/{endpoint['id']}")).status_code == 404
    assert (await b.http.get(f"/v1/webhook-messages/{pair[0]}")).status_code == 404


async def test_old_history_is_pruned_and_pending_deliveries_are_kept(
    tenants: Tenants, hot_pool: asyncpg.Pool, http: Sender, settings: Settings, engine: AsyncEngine
) -> None:
    a, _ = tenants
    async with receiving() as receiver:
        await _endpoint(a, receiver.url, event_types=["points.*"])
        await _earn(a, 1)
        await _earn(a, 2)
        done, waiting = await _relay(hot_pool, a)
        await Clock(hot_pool, http, settings, a).attempt(done, datetime.now(UTC))
    async with engine.begin() as conn:  # everything happened 40 days ago
        for table, column in (
            ("outbox", "published_at"),
            ("webhook_attempts", "attempted_at"),
            ("webhook_deliveries", "created_at"),
            ("webhook_messages", "created_at"),
        ):
            await conn.execute(
                text(f"UPDATE \"{a.schema}\".{table} SET {column} = {column} - interval '40 days'")
            )
    pruned = await prune_history({"engine": engine, "hot_pool": hot_pool, "settings": settings})
    assert pruned["outbox"] >= 2 and pruned["attempts"] >= 1
    assert pruned["deliveries"] >= 1 and pruned["messages"] >= 1
    assert await Clock(hot_pool, http, settings, a).due(datetime.now(UTC) + timedelta(days=1)) == [
        waiting
    ]
    assert (await a.http.get(f"/v1/webhook-messages/{done[0]}")).status_code == 404
    assert (await a.http.get(f"/v1/webhook-messages/{waiting[0]}")).status_code == 200
