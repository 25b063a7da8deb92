"""The real worker process: points.earned reaches a real receiver, verified by the PyPI
`standardwebhooks` package; killing the worker mid-delivery loses nothing."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pointsmall.settings import Settings
from tests.conftest import TenantClient
from tests.webhooks.receiver import Receiver, receiving

Tenants = tuple[TenantClient, TenantClient]


@contextmanager
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
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
    process = subprocess.Popen(
        [sys.executable, "-m", "pointsmall", "webhooks-worker"], env=env, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


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
        with worker(settings):
            earned = await a.http.post(
                "/v1/points/earn", json={"member_id": member, "points": 42, "reason": "live"}
            )
            await _until(lambda: len(receiver.received) >= 1, 30)
            test = await a.http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
            assert test.status_code == 202
            await _until(lambda: len(receiver.received) >= 2, 30)
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
        receiver.delay = 2.0  # answers come late: the kill lands while deliveries are in flight
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
        with worker(settings) as first:
            await _until(lambda: len(receiver.received) >= 5, 30)
            os.killpg(first.pid, signal.SIGKILL)  # mid-delivery: no chance to tidy up
            first.wait()
        answered = (
            await a.http.get(
                f"/v1/webhook-endpoints/{endpoint['id']}/messages",
                params={"limit": 100, "status": "succeeded"},
            )
        ).json()["data"]
        assert len(answered) < 40  # the kill cut deliveries off before their answers
        receiver.delay = 0
        with worker(settings):
            await _until(lambda: len(set(receiver.ids())) >= 40, 90)
            await _until_all_succeeded(a, endpoint["id"], 40)
        _assert_all_received(receiver)
    listed = (
        await a.http.get(f"/v1/webhook-endpoints/{endpoint['id']}/messages", params={"limit": 100})
    ).json()["data"]
    assert len(listed) == 40 and {m["status"] for m in listed} == {"succeeded"}
    for message in listed[:5]:
        log = (await a.http.get(f"/v1/webhook-messages/{message['id']}")).json()
        assert log["attempts"] and log["attempts"][-1]["outcome"] == "succeeded"
        assert all(x["latency_ms"] >= 0 for x in log["attempts"])


async def _until_all_succeeded(t: TenantClient, endpoint_id: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        page = (
            await t.http.get(
                f"/v1/webhook-endpoints/{endpoint_id}/messages",
                params={"limit": 100, "status": "succeeded"},
            )
        ).json()["data"]
        if len(page) >= count:
            return
        assert time.monotonic() < deadline, f"{len(page)} of {count} succeeded"
        await asyncio.sleep(0.2)


def _assert_all_received(receiver: Receiver) -> None:
    """Every earn arrived (duplicates allowed: at least once), each with one id."""
    by_id: dict[str, set[int]] = {}
    for r in receiver.received:
        by_id.setdefault(r.headers["webhook-id"], set()).add(json.loads(r.body)["data"]["points"])
    assert all(len(points) == 1 for points in by_id.values())
    assert sorted(p for points in by_id.values() for p in points) == list(range(1, 41))
