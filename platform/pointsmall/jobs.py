"""Background work on arq. Jobs take what they need as arguments and keep state in Postgres.

The worker outlives its services: its Redis client waits out an outage (resilience.py), a
cron job that meets a database that is away is retried with backoff, its SQLAlchemy pool
pings connections before use, and cron runs missed while it was down or failing run when
it is back (heartbeat.py).
"""

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

from arq import Retry, cron
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import is_unavailable
from pointsmall.heartbeat import Heartbeat, catch_up, pulse, record_cron_success
from pointsmall.hotpath import create_hot_pool
from pointsmall.idempotency.models import IdempotencyKey
from pointsmall.ledger import services as ledger
from pointsmall.mall import orders
from pointsmall.migrations import tenant_migrations
from pointsmall.resilience import fast_redis, patient_redis, stop_waiting_when_done
from pointsmall.rules import services as rules
from pointsmall.settings import Settings
from pointsmall.tenancy import signup_keys
from pointsmall.tenancy.services import all_schemas, make_spares
from pointsmall.webhooks.relay import prune
from pointsmall_tenants import create_pooled_engine, tenant_bind

REDIS_URL_DEFAULT = "redis://127.0.0.1:6379/0"
# A cron run that meets a database that is away is retried after 2, 4, ... 30 s, for about
# as long as CRON_TRIES allows (~45 min); after that the next scheduled run takes over.
CRON_TRIES = 100


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or Settings.from_env()
    ctx["settings"] = settings
    stop_waiting_when_done(ctx["redis"])
    cron_jobs: list[CronJob] = ctx.get("cron_jobs", [])
    ctx["fast_redis"] = fast_redis(settings.redis_url or REDIS_URL_DEFAULT, settings.queue_name)
    ctx["heartbeat"] = Heartbeat(ctx["fast_redis"], settings, "worker")
    ctx["pulse"] = asyncio.create_task(pulse(ctx["heartbeat"], cron_jobs))
    # Pre-ping: a few checkouts a minute here, so a round trip each is nothing, and a stale
    # connection after a database restart never fails a job.
    ctx["engine"] = create_pooled_engine(
        settings.async_database_url, pool_size=4, max_overflow=0, pre_ping=True
    )
    ctx["hot_pool"] = await create_hot_pool(settings, wait=True)
    await catch_up(ctx["redis"], settings.queue_name, cron_jobs)


async def shutdown(ctx: dict[str, Any]) -> None:
    ctx["pulse"].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ctx["pulse"]
    await ctx["heartbeat"].clear()
    await ctx["fast_redis"].aclose()
    if "hot_pool" in ctx:  # not when stopped while waiting for the database
        await ctx["hot_pool"].close()
    await ctx["engine"].dispose()


Job = Callable[[dict[str, Any]], Awaitable[Any]]


def scheduled(job: Job) -> Job:
    """A cron job as arq runs it: retried with backoff while the database is away, and its
    success recorded (for `/metrics` and the catch-up after a restart)."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any]) -> Any:
        try:
            result = await job(ctx)
        except Exception as exc:
            if is_unavailable(exc):
                raise Retry(defer=min(2 ** ctx.get("job_try", 1), 30)) from exc
            raise
        await record_cron_success(ctx["redis"], ctx["settings"].queue_name, job.__name__)
        return result

    return run


async def _tenant_schemas(ctx: dict[str, Any]) -> list[str]:
    """Every tenant schema: live ones and sandboxes (a sandbox's points expire too)."""
    async with AsyncSession(ctx["engine"]) as session:
        return await all_schemas(session)


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Forget idempotency keys older than the retention window, in every tenant and for
    signups."""
    engine = ctx["engine"]
    cutoff = func.now() - timedelta(hours=ctx["settings"].idempotency_ttl_hours)
    schemas = await _tenant_schemas(ctx)
    removed = 0
    for schema in schemas:
        async with AsyncSession(tenant_bind(engine, schema)) as session, session.begin():
            result = await session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff)
            )
            removed += int(getattr(result, "rowcount", 0) or 0)
    # Signup's keys live in the shared schema (a signup has no tenant yet).
    removed += await signup_keys.purge(engine, ctx["settings"].idempotency_ttl_hours)
    return removed


async def sweep_points(ctx: dict[str, Any]) -> dict[str, int]:
    """Release matured pending points and expire due ones, tenant by tenant.

    Each tenant's sweep is one transaction of set-based SQL; a second run finds nothing.
    """
    schemas = await _tenant_schemas(ctx)
    totals = {"tenants": len(schemas), "released": 0, "expired": 0}
    for schema in schemas:
        released, expired = await ledger.sweep(ctx["hot_pool"], schema)
        totals["released"] += released
        totals["expired"] += expired
    return totals


async def expire_unpaid_orders(ctx: dict[str, Any]) -> int:
    """Every minute: orders whose payment window closed are cancelled; their points and
    stock come back."""
    schemas = await _tenant_schemas(ctx)
    cancelled = 0
    for schema in schemas:
        cancelled += await orders.expire_unpaid(ctx["hot_pool"], schema)
    return cancelled


async def make_spare_schemas(ctx: dict[str, Any]) -> int:
    """Every minute: keep `SPARE_SCHEMAS` tenant schemas ready, so signups skip the DDL."""
    settings: Settings = ctx["settings"]
    return await make_spares(ctx["engine"], tenant_migrations(), settings.spare_schemas)


async def prune_history(ctx: dict[str, Any]) -> dict[str, int]:
    """Daily: drop published outbox rows and old webhook messages and attempts."""
    settings: Settings = ctx["settings"]
    schemas = await _tenant_schemas(ctx)
    totals: dict[str, int] = {}
    for schema in schemas:
        pruned = await prune(
            ctx["hot_pool"],
            schema,
            outbox_days=settings.outbox_retention_days,
            log_days=settings.webhook_log_retention_days,
        )
        for name, count in pruned.items():
            totals[name] = totals.get(name, 0) + count
    return totals


async def review_tiers(ctx: dict[str, Any]) -> int:
    """Daily: members whose qualification window ended keep their tier or move down."""
    schemas = await _tenant_schemas(ctx)
    changed = 0
    for schema in schemas:
        changed += await rules.review_tiers(ctx["hot_pool"], schema)
    return changed


def _cron(job: Job, **when: Any) -> CronJob:
    return cron(cast(WorkerCoroutine, scheduled(job)), max_tries=CRON_TRIES, **when)


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker`."""
    cron_jobs = [
        _cron(purge_idempotency_keys, minute={7, 37}),
        _cron(sweep_points, minute=set(range(0, 60, 5)), run_at_startup=True),
        _cron(expire_unpaid_orders, second={30}, run_at_startup=True),
        _cron(make_spare_schemas, second={45}, run_at_startup=True),
        _cron(prune_history, hour={3}, minute={23}),
        _cron(review_tiers, hour={0}, minute={17}),
    ]
    return {
        "functions": [
            purge_idempotency_keys,
            sweep_points,
            expire_unpaid_orders,
            make_spare_schemas,
            prune_history,
            review_tiers,
        ],
        # Cron jobs are named `cron:<function>`: a function enqueued by name runs as is.
        "cron_jobs": cron_jobs,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_pool": patient_redis(settings.redis_url or REDIS_URL_DEFAULT, settings.queue_name),
        "queue_name": settings.queue_name,
        "ctx": {"settings": settings, "cron_jobs": cron_jobs},
    }
