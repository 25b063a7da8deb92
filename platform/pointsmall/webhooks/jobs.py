"""The webhook worker (`pointsmall webhooks-worker`): its own arq queue, so a delivery job's
short timeout sets how soon a job a killed worker held runs again (timeout + 10 s)."""

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from arq import Retry, func
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import is_unavailable
from pointsmall.heartbeat import Heartbeat, pulse
from pointsmall.hotpath import create_hot_pool, libpq_url
from pointsmall.resilience import REDIS_DOWN, fast_redis, patient_redis, stop_waiting_when_done
from pointsmall.settings import Settings
from pointsmall.tenancy.services import schema_modes
from pointsmall.webhooks import relay
from pointsmall.webhooks.keys import secret_box
from pointsmall_tenants import create_pooled_engine
from pointsmall_webhooks.delivery import deliver
from pointsmall_webhooks.policy import TIMEOUT_SECONDS
from pointsmall_webhooks.sender import Sender

log = logging.getLogger("pointsmall.webhooks")
SWEEP_SECONDS = 10.0
FIRST_ATTEMPT_TASKS = 200
FIRST_ATTEMPT_QUEUE = 2000
HAND_OVER_WAIT = 1.0
LONGEST_DELIVERY = TIMEOUT_SECONDS + 5  # the HTTP timeout, and the bookkeeping around it
REDIS_URL_DEFAULT = "redis://127.0.0.1:6379/0"
# After an error the relay waits 0.5 s, doubling up to 10 s, before its next pass.
RELAY_BACKOFF = (0.5, 10.0)


async def deliver_webhook(
    ctx: dict[str, Any], schema: str, message_id: str, endpoint_id: str, attempt: int | None = None
) -> str:
    """Attempt number `attempt` (a job for an attempt made already does nothing); a retry is
    enqueued as an arq job deferred to when the policy says."""
    settings: Settings = ctx["settings"]
    try:
        done = await deliver(
            ctx["hot_pool"],
            ctx["http"],
            secret_box(settings),
            schema,
            message_id,
            endpoint_id,
            now=datetime.now(UTC),
            attempt=attempt,
        )
    except Exception as exc:
        if is_unavailable(exc) and "job_try" in ctx:  # an arq job: try again shortly
            raise Retry(defer=min(2 ** ctx["job_try"], 30)) from exc
        raise
    if done is None:
        return "nothing to do"
    if "heartbeat" in ctx:  # counted for /metrics
        ctx["heartbeat"].counts[done.verdict.outcome] += 1
    if done.verdict.outcome == "retry":
        # Fails at once if Redis is away: the delivery is a row due at its retry time, and
        # the relay's rescue enqueues it once it is overdue.
        await ctx.get("fast_redis", ctx["redis"]).enqueue_job(
            "deliver_webhook",
            schema,
            message_id,
            endpoint_id,
            done.attempt + 1,
            _job_id=relay.job_id(schema, message_id, endpoint_id, done.attempt + 1),
            _defer_until=done.verdict.retry_at,
            _queue_name=settings.webhook_queue,
        )
    return f"attempt {done.attempt}: {done.status} {done.verdict.outcome}"


class Relay:
    """Hears `NOTIFY pointsmall_outbox` (sent when a change that wrote events commits) and
    relays that schema at once; every SWEEP_SECONDS it also relays every schema and rescues
    deliveries whose job was lost, in case a notice was missed.

    A fresh delivery's first attempt is made here, by this process's FIRST_ATTEMPT_TASKS
    consumers, not through an arq job: the arq hop costs more than the delivery itself (see
    the decisions doc; 695/s through arq against 2,242/s direct on the same machine). What
    does not fit the in-process queue goes to arq; retries, manual retries and tests always
    do. A process that dies with first attempts queued loses nothing: the deliveries are rows,
    and `rescue` enqueues them once their lease (`WEBHOOK_FIRST_ATTEMPT_LEASE_SECONDS`) has
    run out.
    """

    def __init__(self, ctx: dict[str, Any]) -> None:
        self.ctx = ctx
        self.settings: Settings = ctx["settings"]
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        self.tenant_ids: dict[str, tuple[str, bool]] = {}  # schema → (tenant, livemode)
        self.first_attempts: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue(
            FIRST_ATTEMPT_QUEUE
        )
        self.consumers = [
            asyncio.create_task(self._first_attempts()) for _ in range(FIRST_ATTEMPT_TASKS)
        ]
        self.redis = ctx["fast_redis"]  # the relay goes on while Redis is away
        self.heartbeat = Heartbeat(self.redis, self.settings, "relay")
        self.listener: asyncpg.Connection | None = None

    async def _first_attempts(self) -> None:
        while True:
            schema, message_id, endpoint_id = await self.first_attempts.get()
            try:
                await deliver_webhook(self.ctx, schema, message_id, endpoint_id, 1)
            except Exception:  # the row stays pending: rescue sends it through arq
                log.exception("first attempt of %s to %s failed", message_id, endpoint_id)
            finally:
                self.first_attempts.task_done()

    async def hand_over(self, schema: str, pairs: list[tuple[str, str]]) -> None:
        """Queue first attempts here, waiting up to HAND_OVER_WAIT for room while the
        consumers drain the queue; what still does not fit goes to arq."""
        for index, (message_id, endpoint_id) in enumerate(pairs):
            try:
                await asyncio.wait_for(
                    self.first_attempts.put((schema, message_id, endpoint_id)), HAND_OVER_WAIT
                )
            except TimeoutError:  # the consumers are stuck on slow receivers
                rest = pairs[index:]
                try:
                    await relay.enqueue(
                        self.redis,
                        self.settings.webhook_queue,
                        schema,
                        [(m, e, 1) for m, e in rest],
                    )
                except REDIS_DOWN as exc:  # rows with a lease: the rescue enqueues them later
                    log.warning("%d first attempts left to the rescue: %s", len(rest), exc)
                return

    async def stop(self) -> None:
        """Finish the first attempts already queued (for as long as one delivery may take),
        then stop: a rolling restart abandons nothing it need not."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.first_attempts.join(), LONGEST_DELIVERY)
        for task in self.consumers:
            task.cancel()

    def _heard(self, _conn: Any, _pid: int, _channel: str, schema: object) -> None:
        self.dirty.add(str(schema))
        self.wake.set()

    async def _tenant_ids(self) -> dict[str, tuple[str, bool]]:
        """Every tenant schema (live ones and sandboxes): its tenant and mode."""
        async with AsyncSession(self.ctx["engine"]) as session:
            self.tenant_ids = await schema_modes(session)
        return self.tenant_ids

    async def relay(self, schema: str) -> int:
        known = self.tenant_ids.get(schema) or (await self._tenant_ids()).get(schema)
        if known is None:
            return 0
        tenant_id, livemode = known
        total = 0
        while True:
            async with self.ctx["hot_pool"].acquire() as conn:
                relayed = await relay.relay_schema(
                    conn,
                    schema,
                    tenant_id,
                    timedelta(seconds=self.settings.webhook_first_attempt_lease_seconds),
                    livemode=livemode,
                )
            await self.hand_over(schema, relayed.pairs)
            total += len(relayed.pairs)
            await self.heartbeat.beat()  # a long backlog is progress too
            if relayed.events < relay.BATCH:  # the outbox is drained
                return total

    async def _listen(self) -> bool:
        """(Re)connect the LISTEN connection when it is closed (a database restart); True
        when it was (re)made: notices may have been missed meanwhile."""
        if self.listener is not None and not self.listener.is_closed():
            return False
        if self.listener is not None:
            self.listener.terminate()
        self.listener = None
        listener: asyncpg.Connection = await asyncpg.connect(
            libpq_url(self.settings.database_url or ""), timeout=10
        )
        await listener.add_listener(relay.CHANNEL, self._heard)
        self.listener = listener
        return True

    async def _pass(self, schemas: set[str], swept: bool) -> None:
        clean = True
        for schema in sorted(schemas):
            try:
                await self.relay(schema)
            except Exception as exc:
                if is_unavailable(exc):  # the database is away: the pass ends (and is redone)
                    raise
                log.exception("relaying %s failed", schema)  # one tenant's trouble only
                clean = False
        if swept:
            await self._rescue(schemas)
        if clean:
            await self.heartbeat.beat()

    async def _rescue(self, schemas: set[str]) -> None:
        for schema in sorted(schemas):
            try:
                await relay.rescue(
                    self.ctx["hot_pool"],
                    self.redis,
                    self.settings.webhook_queue,
                    schema,
                    timedelta(seconds=self.settings.webhook_rescue_after_seconds),
                )
            except RedisError as exc:
                log.warning("rescue skipped until Redis is back: %s", exc)
                return
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                log.exception("rescuing %s failed", schema)

    async def run(self) -> None:
        """Relay until cancelled. Every error is logged and the loop goes on after a pause
        (backoff to 10 s); after one, every schema is relayed again, as notices may have been
        lost with the connection. The heartbeat is written whenever the loop turns without
        an error, so it goes stale while the relay cannot work."""
        last_sweep = -SWEEP_SECONDS  # the first pass catches up with what no one heard
        pause = RELAY_BACKOFF[0]
        while True:
            try:
                if await self._listen():
                    last_sweep = -SWEEP_SECONDS
                since = time.monotonic() - last_sweep
                swept = since >= SWEEP_SECONDS
                if not swept and not self.dirty:
                    await self.heartbeat.beat()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), SWEEP_SECONDS - since)
                    continue
                self.wake.clear()
                if swept:
                    self.dirty |= set(await self._tenant_ids())
                    last_sweep = time.monotonic()
                schemas, self.dirty = self.dirty, set()
                await self._pass(schemas, swept)
                pause = RELAY_BACKOFF[0]
            except Exception:
                log.exception("relay pass failed; again in %.1f s", pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RELAY_BACKOFF[1])
                last_sweep = -SWEEP_SECONDS

    async def close(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.listener.close(), 5)
        await self.heartbeat.clear()


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    stop_waiting_when_done(ctx["redis"])
    ctx["fast_redis"] = fast_redis(settings.redis_url or REDIS_URL_DEFAULT, settings.queue_name)
    ctx["heartbeat"] = Heartbeat(ctx["fast_redis"], settings, "webhooks-worker")
    ctx["pulse"] = asyncio.create_task(pulse(ctx["heartbeat"]))
    ctx["engine"] = create_pooled_engine(
        settings.async_database_url, pool_size=2, max_overflow=0, pre_ping=True
    )
    ctx["http"] = Sender(allow_private=settings.webhook_allow_private)
    # Bookkeeping of deliveries commits without waiting for the WAL flush: a crash of the
    # database can forget the last attempts' records, and then those messages are sent
    # again (with the same webhook-id: at least once either way). Events themselves, the
    # outbox and the relay's messages and deliveries, are written durably as ever.
    ctx["hot_pool"] = await create_hot_pool(settings, {"synchronous_commit": "off"}, wait=True)
    ctx["relay"] = Relay(ctx)
    ctx["relay_task"] = asyncio.create_task(ctx["relay"].run())


async def shutdown(ctx: dict[str, Any]) -> None:
    if "relay" in ctx:  # not when stopped while waiting for the database
        ctx["relay_task"].cancel()  # relay nothing new
        with contextlib.suppress(asyncio.CancelledError):
            await ctx["relay_task"]
        await ctx["relay"].stop()
        await ctx["relay"].close()
        await ctx["hot_pool"].close()
    ctx["pulse"].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ctx["pulse"]
    await ctx["heartbeat"].beat(force=True)  # the last attempts count
    await ctx["heartbeat"].clear()
    await ctx["fast_redis"].aclose()
    await ctx["http"].aclose()
    await ctx["engine"].dispose()


def webhook_worker_settings(settings: Settings, *, max_jobs: int = 500) -> dict[str, Any]:
    return {
        "functions": [
            func(deliver_webhook, timeout=LONGEST_DELIVERY, keep_result=0, max_tries=1000)
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_pool": patient_redis(
            settings.redis_url or REDIS_URL_DEFAULT, settings.webhook_queue
        ),
        "queue_name": settings.webhook_queue,
        "max_jobs": max_jobs,
        # On SIGTERM/SIGINT arq takes no new jobs and lets running ones finish first.
        "job_completion_wait": int(LONGEST_DELIVERY),
        # arq waits this long between reads of the queue; its default (0.5 s) caps a busy
        # worker's intake, and an idle worker's read is one cheap ZRANGEBYSCORE.
        "poll_delay": 0.05,
        "ctx": {"settings": settings},
    }
