"""What the background processes leave in Redis for `/healthz/workers` and `/metrics`: a
heartbeat per process, each cron job's last success, and webhook attempt counts.

Redis rather than PostgreSQL: the workers' jobs live in Redis, so a worker that cannot reach
it is not working whatever its heartbeat would say in the database, and while PostgreSQL is
away (when the API is not ready anyway) the heartbeats still show which processes are alive
and waiting for it. A heartbeat costs one HSET every few seconds and no WAL.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from arq.connections import ArqRedis
from arq.cron import CronJob

from pointsmall.resilience import REDIS_DOWN
from pointsmall.settings import Settings

log = logging.getLogger("pointsmall.heartbeat")
# A heartbeat is written every stale/6 seconds (5 s for the default 30 s), so one lost write
# never makes a process look stale; one older than 10 x stale is dropped when read: its
# process is gone (killed, or replaced by one with another pid) and was reported for long
# enough.
BEATS_PER_STALE = 6
FORGET_AFTER_STALE = 10
# Webhook attempt outcomes are also counted per minute (kept WINDOW_MINUTES * 2) for a
# success ratio over the last WINDOW_MINUTES.
WINDOW_MINUTES = 5


def beat_seconds(stale_seconds: float) -> float:
    return min(5.0, max(0.2, stale_seconds / BEATS_PER_STALE))


# The processes a deployment runs: the `pointsmall worker` loop, the `webhooks-worker` loop
# and the relay inside it.
ROLES = ("worker", "webhooks-worker", "relay")


def heartbeats_key(queue_name: str) -> str:
    return f"{queue_name}:heartbeats"


def cron_key(queue_name: str) -> str:
    return f"{queue_name}:cron-last-success"


def webhook_attempts_key(queue_name: str, minute: int | None = None) -> str:
    """The totals, or one minute's counts (minute: Unix time // 60)."""
    key = f"{queue_name}:webhook-attempts"
    return key if minute is None else f"{key}:{minute}"


class Heartbeat:
    """One process's heartbeat (a field of the heartbeats hash), written at most every
    `interval` seconds; webhook attempt counts for the metrics ride along with it."""

    def __init__(self, redis: ArqRedis, settings: Settings, role: str) -> None:
        self.redis = redis
        self.queue_name = settings.queue_name
        self.interval = beat_seconds(settings.heartbeat_stale_seconds)
        self.role = role
        self.field = f"{role}:{socket.gethostname()}:{os.getpid()}"
        self.counts: Counter[str] = Counter()
        self.written = -self.interval  # monotonic time of the last try
        self.failing = False

    async def beat(self, *, force: bool = False) -> bool:
        """Record that this process is alive now; False when Redis did not take it."""
        now = time.monotonic()
        if not force and now - self.written < self.interval:
            return True
        self.written = now
        counts, self.counts = self.counts, Counter()
        value = msgspec.json.encode({"role": self.role, "at": time.time()}).decode()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(heartbeats_key(self.queue_name), self.field, value)
                minute = webhook_attempts_key(self.queue_name, int(time.time() // 60))
                for outcome, count in counts.items():
                    pipe.hincrby(webhook_attempts_key(self.queue_name), outcome, count)
                    pipe.hincrby(minute, outcome, count)
                if counts:
                    pipe.expire(minute, WINDOW_MINUTES * 2 * 60)
                await pipe.execute()
        except REDIS_DOWN as exc:
            self.counts.update(counts)  # MULTI/EXEC: nothing was counted, count them next time
            if not self.failing:
                log.warning("%s heartbeat not written: %s", self.role, exc)
            self.failing = True
            return False
        if self.failing:
            log.warning("%s heartbeat written again", self.role)
        self.failing = False
        return True

    async def clear(self) -> None:
        """On a clean stop: this process is gone, not stale."""
        with contextlib.suppress(*REDIS_DOWN):
            await self.redis.hdel(heartbeats_key(self.queue_name), self.field)  # type: ignore[misc]


async def pulse(heartbeat: Heartbeat, cron_jobs: list[CronJob] | None = None) -> None:
    """A worker's heartbeat task. When Redis comes back after missing beats, cron runs that
    fell due meanwhile are brought together into one run now (arq would otherwise enqueue
    every missed minute one by one)."""
    while True:
        was_failing = heartbeat.failing
        if await heartbeat.beat() and was_failing and cron_jobs:
            run_missed_now(cron_jobs, datetime.now().astimezone())
        await asyncio.sleep(heartbeat.interval)


def run_missed_now(cron_jobs: list[CronJob], now: datetime) -> None:
    for job in cron_jobs:
        if job.next_run is not None and job.next_run < now:
            job.next_run = now


async def catch_up(redis: ArqRedis, queue_name: str, cron_jobs: list[CronJob]) -> list[str]:
    """At start-up: a cron job whose last success came before a run it should have made since
    (the worker was down or failing then) runs at once. Without a record (a new deployment,
    or a Redis that lost its data) arq's own schedule stands."""
    now = datetime.now().astimezone()  # arq's default cron time zone: the system's
    try:
        recorded = await redis.hgetall(cron_key(queue_name))  # type: ignore[misc]
    except REDIS_DOWN:
        return []
    missed: list[str] = []
    for job in cron_jobs:
        raw = recorded.get(job.name.removeprefix("cron:").encode())
        if raw is None or job.run_at_startup:
            continue
        job.calculate_next(datetime.fromtimestamp(float(raw), now.tzinfo))
        if job.next_run is not None and job.next_run <= now:
            job.next_run = now
            missed.append(job.name)
    if missed:
        log.warning("cron runs missed while the worker was away, running now: %s", missed)
    return missed


async def record_cron_success(redis: ArqRedis, queue_name: str, name: str) -> None:
    with contextlib.suppress(*REDIS_DOWN):  # only metrics and catch-up read it
        await redis.hset(cron_key(queue_name), name, str(time.time()))  # type: ignore[misc]


@dataclass(frozen=True)
class Beat:
    worker: str
    role: str
    age_seconds: float
    stale: bool


async def read_heartbeats(redis: ArqRedis, queue_name: str, stale_after: float) -> list[Beat]:
    """Every process's heartbeat with its age; long-forgotten ones are dropped."""
    key = heartbeats_key(queue_name)
    raw: dict[bytes, bytes] = await redis.hgetall(key)  # type: ignore[misc]
    now = time.time()
    beats: list[Beat] = []
    forget: list[str] = []
    for field, value in raw.items():
        try:
            data: dict[str, Any] = msgspec.json.decode(value)
            role, age = str(data["role"]), max(0.0, now - float(data["at"]))
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            forget.append(field.decode())
            continue
        if age > stale_after * FORGET_AFTER_STALE:
            forget.append(field.decode())
            continue
        beats.append(Beat(field.decode(), role, round(age, 1), age > stale_after))
    if forget:
        await redis.hdel(key, *forget)  # type: ignore[misc]
    return sorted(beats, key=lambda b: b.worker)


async def read_cron_successes(redis: ArqRedis, queue_name: str) -> dict[str, float]:
    raw: dict[bytes, bytes] = await redis.hgetall(cron_key(queue_name))  # type: ignore[misc]
    return {name.decode(): float(at) for name, at in raw.items()}


async def read_webhook_attempts(
    redis: ArqRedis, queue_name: str
) -> tuple[dict[str, int], dict[str, int]]:
    """Attempt counts by outcome: since counting began, and over the last WINDOW_MINUTES."""
    now = int(time.time() // 60)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(webhook_attempts_key(queue_name))
        for minute in range(now - WINDOW_MINUTES + 1, now + 1):
            pipe.hgetall(webhook_attempts_key(queue_name, minute))
        totals, *minutes = await pipe.execute()
    recent: Counter[str] = Counter()
    for counts in minutes:
        recent.update({outcome.decode(): int(n) for outcome, n in counts.items()})
    return {outcome.decode(): int(n) for outcome, n in totals.items()}, dict(recent)
