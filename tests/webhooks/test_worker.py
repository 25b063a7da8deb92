"""The real worker process: points.earned reaches a real receiver, verified by the PyPI
`standardwebhooks` package; killing the worker mid-delivery loses nothing."""

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pointsmall.settings import Settings
from tests.conftest import TenantClient
from tests.webhooks.receiver import Receiver, receiving

Tenants = tuple[TenantClient, TenantClient]


@asynccontextmanager
async def worker(settings: Settings) -> AsyncIterator[asyncio.subprocess.Process]:
    """`pointsmall webhooks-worker` as its own process; stopped with SIGTERM at the end, which
    it answers by finishing what it is sending."""
    env = os.environ | {
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "POINTSMALL_QUEUE": settings.queue_name,
        "POINTSMALL_ENV": "test",
        "WEBHOOK_SECRET_KEYS": settings.webhook_secret_keys or "",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "LOG_LEVEL": "WARNING",
        # Short leases so a killed worker's first attempts are rescued within the test.
        "WEBHOOK_FIRST_ATTEMPT_LEASE_SECONDS": "1",
        "WEBHOOK_RESCUE_AFTER_SECONDS": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pointsmall", "webhooks-worker", env=env, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)


async def _member(t: TenantClient, name: str) -> str:
    member: str = (await t.http.post("/v1/members", json={"external_id": name})).json()["id"]
    return member


async def test_points_earned_reaches_a_real_receiver(tenants: Tenants, settings: Settings) -> None:
    a, _ = tenants
    async with receiving() as receiver:
        endpoint = (
            await a.http.post(
                "/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["points.*"]}
            )
        ).json()
        member = await _member(a, "live")
        async with worker(settings):
            earned = await a.http.post(
                "/v1/points/earn", json={"member_id": member, "points": 42, "reason": "live"}
            )
            await receiver.until(lambda r: len(r.received) >= 1, 30)
            test = await a.http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
            assert test.status_code == 202
            await receiver.until(lambda r: len(r.received) >= 2, 30)
    hook = Webhook(endpoint["secret"])
    first, probe = receiver.received[:2]
    payload = hook.verify(first.body, first.headers)
    assert payload["type"] == "points.earned" and payload["tenant_id"] == a.id
    assert payload["data"]["id"] == earned.json()["id"] and payload["data"]["points"] == 42
    assert hook.verify(probe.body, probe.headers)["type"] == "webhook.test"
    for index in range(len(first.body)):
        changed = bytearray(first.body)
        changed[index] ^= 0x01
        try:
            hook.verify(bytes(changed), first.headers)
        except WebhookVerificationError:
            continue
        raise AssertionError(f"a change at byte {index} was accepted")


async def test_killing_the_worker_loses_no_message(tenants: Tenants, settings: Settings) -> None:
    a, _ = tenants
    async with receiving() as receiver:
        receiver.gate.clear()  # no answers yet: the kill lands while deliveries are in flight
        member = await _member(a, "killed")
        endpoint = (
            await a.http.post(
                "/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["points.*"]}
            )
        ).json()
        for n in range(40):
            await a.http.post(
                "/v1/points/earn", json={"member_id": member, "points": n + 1, "reason": "k"}
            )
        async with worker(settings) as first:
            await receiver.until(lambda r: len(r.received) >= 5, 30)
            os.killpg(first.pid, signal.SIGKILL)  # mid-delivery: no chance to tidy up
        answered = await _messages(a, endpoint["id"], "succeeded")
        assert answered == []  # no delivery heard its answer before the kill
        before = len(receiver.received)
        receiver.gate.set()
        async with worker(settings):
            await receiver.until(lambda r: len(set(r.ids()[before:])) >= 40, 90)
        # The worker stopped on SIGTERM after finishing what it was sending: all recorded.
        _assert_all_received(receiver)
    listed = await _messages(a, endpoint["id"])
    assert len(listed) == 40 and {m["status"] for m in listed} == {"succeeded"}
    for message in listed[:5]:
        log = (await a.http.get(f"/v1/webhook-messages/{message['id']}")).json()
        assert log["attempts"] and log["attempts"][-1]["outcome"] == "succeeded"
        assert all(x["latency_ms"] >= 0 for x in log["attempts"])


async def _messages(t: TenantClient, endpoint_id: str, status: str | None = None) -> list[Any]:
    params: dict[str, Any] = {"limit": 100} | ({"status": status} if status else {})
    page = await t.http.get(f"/v1/webhook-endpoints/{endpoint_id}/messages", params=params)
    data: list[Any] = page.json()["data"]
    return data


def _assert_all_received(receiver: Receiver) -> None:
    """Every earn arrived (duplicates allowed: at least once), each with one id."""
    by_id: dict[str, set[int]] = {}
    for r in receiver.received:
        by_id.setdefault(r.headers["webhook-id"], set()).add(json.loads(r.body)["data"]["points"])
    assert all(len(points) == 1 for points in by_id.values())
    assert sorted(p for points in by_id.values() for p in points) == list(range(1, 41))
