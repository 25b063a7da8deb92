"""Webhook defects found trying the API as a new user would: a manual retry that waited for
the schedule, disabling that cancelled nothing, unknown event types, IPv6 loopback refused
where loopback is allowed, and a NUL in a URL answering 500."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest
import uvicorn
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import job_key_prefix

from pointsmall.settings import Settings
from pointsmall.webhooks import relay
from pointsmall.webhooks.jobs import deliver_webhook
from pointsmall.webhooks.keys import secret_box
from pointsmall.webhooks.schemas import EVENT_TYPES, EndpointCreate
from pointsmall_webhooks.delivery import deliver
from pointsmall_webhooks.sender import Sender
from pointsmall_webhooks.ssrf import UnsafeTarget, check_url
from tests.conftest import TenantClient, free_port
from tests.webhooks.receiver import Receiver, receiving
from tests.webhooks.test_worker import worker

Tenants = tuple[TenantClient, TenantClient]


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))
    yield pool
    await pool.aclose()


@pytest.fixture
async def http() -> AsyncIterator[Sender]:
    sender = Sender(allow_private=True)
    yield sender
    await sender.aclose()


async def _endpoint(t: TenantClient, url: str, **fields: Any) -> dict[str, Any]:
    created = await t.http.post("/v1/webhook-endpoints", json={"url": url} | fields)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def _earn_and_relay(t: TenantClient, pool: asyncpg.Pool) -> list[tuple[str, str]]:
    member = (await t.http.post("/v1/members", json={"external_id": "defects"})).json()["id"]
    earned = await t.http.post(
        "/v1/points/earn", json={"member_id": member, "points": 7, "reason": "defects"}
    )
    assert earned.status_code == 201, earned.text
    async with pool.acquire() as conn:
        return (await relay.relay_schema(conn, t.schema, t.id)).pairs


async def test_a_manual_retry_attempts_at_once_ahead_of_the_schedule(
    tenants: Tenants, settings: Settings, hot_pool: asyncpg.Pool, http: Sender, redis: ArqRedis
) -> None:
    a, _ = tenants
    ctx = {"settings": settings, "hot_pool": hot_pool, "http": http, "redis": redis}
    async with receiving() as receiver:
        # Each answer asks for an hour's wait: the schedule alone would not try again soon.
        receiver.status, receiver.headers = 429, [(b"retry-after", b"3600")]
        await _endpoint(a, receiver.url, event_types=["points.*"])
        [(message_id, endpoint_id)] = await _earn_and_relay(a, hot_pool)
        # The first attempt, as the worker makes it: attempt 2 is now an arq job an hour out.
        assert (await deliver_webhook(ctx, a.schema, message_id, endpoint_id)).startswith(
            "attempt 1: 429 retry"
        )
        second = relay.job_id(a.schema, message_id, endpoint_id, 2)
        queue = settings.webhook_queue
        assert await redis.zscore(queue, second) is not None
        async with worker(settings):
            retried = await a.http.post(f"/v1/webhook-messages/{message_id}/retry", json={})
            assert retried.status_code == 202
            await receiver.until(lambda r: len(r.received) >= 2, 20)
        # The worker finished on SIGTERM: the scheduled job for attempt 2 is the one that ran
        # (brought forward), so nothing is left to make attempt 2 again in an hour.
        assert await redis.exists(job_key_prefix + second) == 0
        assert await redis.zscore(queue, second) is None
        third = relay.job_id(a.schema, message_id, endpoint_id, 3)
        assert await redis.zscore(queue, third) is not None
        # A stale job for an attempt already made does nothing.
        assert await deliver_webhook(ctx, a.schema, message_id, endpoint_id, 2) == "nothing to do"
        assert len(receiver.received) == 2
        await redis.delete(job_key_prefix + third)
        await redis.zrem(queue, third)
    log = (await a.http.get(f"/v1/webhook-messages/{message_id}")).json()
    assert [(x["attempt"], x["outcome"]) for x in log["attempts"]] == [(1, "retry"), (2, "retry")]
    assert {r.headers["webhook-id"] for r in receiver.received} == {message_id}


async def test_disabling_an_endpoint_cancels_its_pending_deliveries_at_once(
    tenants: Tenants, settings: Settings, hot_pool: asyncpg.Pool, http: Sender
) -> None:
    a, _ = tenants
    async with receiving() as receiver:
        endpoint = await _endpoint(a, receiver.url, event_types=["points.*"])
        [pair] = await _earn_and_relay(a, hot_pool)
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        assert [m["status"] for m in (await a.http.get(f"{path}/messages")).json()["data"]] == [
            "pending"
        ]
        disabled = await a.http.patch(path, json={"enabled": False})
        assert disabled.status_code == 200 and disabled.json()["enabled"] is False
        listed = (await a.http.get(f"{path}/messages")).json()["data"]
        assert [(m["status"], m["next_attempt_at"]) for m in listed] == [("cancelled", None)]
        # Re-enabling does not revive them, and nothing is sent.
        await a.http.patch(path, json={"enabled": True})
        done = await deliver(
            hot_pool, http, secret_box(settings), a.schema, *pair, now=datetime.now(UTC)
        )
        assert done is None and receiver.received == []
    listed = (await a.http.get(f"{path}/messages")).json()["data"]
    assert [m["status"] for m in listed] == ["cancelled"]


async def test_disabling_mid_attempt_is_not_undone_by_the_attempt(
    tenants: Tenants, settings: Settings, hot_pool: asyncpg.Pool, http: Sender
) -> None:
    a, _ = tenants
    async with receiving() as receiver:
        receiver.status = 500
        receiver.gate.clear()  # the attempt is in flight until the test opens the gate
        endpoint = await _endpoint(a, receiver.url, event_types=["points.*"])
        [pair] = await _earn_and_relay(a, hot_pool)
        attempt = asyncio.create_task(
            deliver(hot_pool, http, secret_box(settings), a.schema, *pair, now=datetime.now(UTC))
        )
        await receiver.until(lambda r: len(r.received) == 1, 10)
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        assert (await a.http.patch(path, json={"enabled": False})).status_code == 200
        receiver.gate.set()
        done = await attempt
        assert done is not None and done.verdict.outcome == "retry"
    listed = (await a.http.get(f"{path}/messages")).json()["data"]
    assert [(m["status"], m["attempts"], m["next_attempt_at"]) for m in listed] == [
        ("cancelled", 1, None)
    ]
    log = (await a.http.get(f"/v1/webhook-messages/{pair[0]}")).json()
    assert [x["status_code"] for x in log["attempts"]] == [500]  # the log still tells it


@pytest.mark.parametrize("patterns", [["no.such.type"], ["points.*", "webhook.*"], ["orders.*"]])
async def test_unknown_event_types_are_refused(tenants: Tenants, patterns: list[str]) -> None:
    a, _ = tenants
    url = f"http://127.0.0.1:{free_port()}/hook"
    created = await a.http.post("/v1/webhook-endpoints", json={"url": url, "event_types": patterns})
    assert created.status_code == 422, created.text
    problem = created.json()
    assert problem["code"] == "unknown_event_type"
    assert [e["field"] for e in problem["errors"]] == ["event_types"]
    assert all(known in problem["detail"] for known in EVENT_TYPES)
    endpoint = await _endpoint(a, url, event_types=["points.*"])
    updated = await a.http.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"event_types": patterns}
    )
    assert updated.status_code == 422 and updated.json()["code"] == "unknown_event_type"
    after = (await a.http.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert after["event_types"] == ["points.*"]


async def test_known_event_types_and_patterns_are_accepted(tenants: Tenants) -> None:
    a, _ = tenants
    url = f"http://127.0.0.1:{free_port()}/hook"
    for patterns in (["*"], ["points.*", "order.*", "member.*"], EVENT_TYPES, None):
        await _endpoint(a, url, event_types=patterns)


@asynccontextmanager
async def _receiving_on_ipv6_loopback() -> AsyncIterator[Receiver]:
    """The test receiver on [::1] (skipped where the machine has no IPv6). The socket listens
    before uvicorn starts: a connection waits in its backlog until uvicorn accepts it."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.bind(("::1", 0))
    except OSError:
        sock.close()
        pytest.skip("no IPv6 loopback on this machine")
    sock.listen()
    receiver = Receiver(url=f"http://[::1]:{sock.getsockname()[1]}/hook")
    receiver.gate.set()
    server = uvicorn.Server(uvicorn.Config(receiver, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_ipv6_loopback_is_loopback(
    tenants: Tenants, settings: Settings, hot_pool: asyncpg.Pool, http: Sender
) -> None:
    a, _ = tenants
    async with _receiving_on_ipv6_loopback() as receiver:
        await _endpoint(a, receiver.url, event_types=["points.*"])
        [pair] = await _earn_and_relay(a, hot_pool)
        done = await deliver(
            hot_pool, http, secret_box(settings), a.schema, *pair, now=datetime.now(UTC)
        )
        assert done is not None and done.status == 200, done
    assert receiver.ids() == [pair[0]]
    # Link-local and metadata addresses stay refused, IPv6 ones included.
    for target in (
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
    ):
        with pytest.raises(UnsafeTarget):
            await check_url(target, allow_private=True, require_https=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/\u0000",
        "http://127.0.0.1\u0000:1/",
        "http://127.0.0.1:1/a\u0000b",
        "http://127.0.0.1:1/\u001f",
    ],
)
async def test_a_nul_in_a_url_is_refused_naming_the_url(tenants: Tenants, url: str) -> None:
    a, _ = tenants
    created = await a.http.post("/v1/webhook-endpoints", json={"url": url})
    assert created.status_code == 422, created.text
    assert [e["field"] for e in created.json()["errors"]] == ["url"]
    endpoint = await _endpoint(a, f"http://127.0.0.1:{free_port()}/hook")
    updated = await a.http.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"url": url})
    assert updated.status_code == 422, updated.text
    assert [e["field"] for e in updated.json()["errors"]] == ["url"]
    # The URL's own validation refuses it, whatever generic checks run before it.
    with pytest.raises(msgspec.ValidationError, match=r"\$\.url"):
        msgspec.json.decode(msgspec.json.encode({"url": url}), type=EndpointCreate)
    # And so does the guard, whatever the schema in front of it.
    with pytest.raises(UnsafeTarget):
        await check_url(url, allow_private=True, require_https=False)
