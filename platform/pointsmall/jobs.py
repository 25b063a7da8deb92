"""Background work on arq. Jobs take what they need as arguments and keep state in Postgres."""

from datetime import timedelta
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.hotpath import create_hot_pool
from pointsmall.idempotency.models import IdempotencyKey
from pointsmall.ledger import services as ledger
from pointsmall.mall import orders
from pointsmall.migrations import tenant_migrations
from pointsmall.rules import services as rules
from pointsmall.settings import Settings
from pointsmall.tenancy.services import all_schemas, make_spares
from pointsmall.webhooks.relay import prune
from pointsmall_tenants import create_pooled_engine, tenant_bind


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or Settings.from_env()
    ctx["settings"] = settings
    ctx["engine"] = create_pooled_engine(settings.async_database_url, pool_size=4, max_overflow=0)
    ctx["hot_pool"] = await create_hot_pool(settings)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["hot_pool"].close()
    await ctx["engine"].dispose()


async def _tenant_schemas(ctx: dict[str, Any]) -> list[str]:
    async with AsyncSession(ctx["engine"]) as session:
        return await all_schemas(session)


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Forget idempotency keys older than the retention window, in every tenant."""
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


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker`."""
    return {
        "functions": [
            purge_idempotency_keys,
            sweep_points,
            expire_unpaid_orders,
            make_spare_schemas,
            prune_history,
            review_tiers,
        ],
        "cron_jobs": [
            cron(purge_idempotency_keys, minute={7, 37}, run_at_startup=False),
            cron(sweep_points, minute=set(range(0, 60, 5)), run_at_startup=True),
            cron(expire_unpaid_orders, second={30}, run_at_startup=True),
            cron(make_spare_schemas, second={45}, run_at_startup=True),
            cron(prune_history, hour={3}, minute={23}, run_at_startup=False),
            cron(review_tiers, hour={0}, minute={17}, run_at_startup=False),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1:6379/0"),
        "queue_name": settings.queue_name,
        "ctx": {"settings": settings},
    }
