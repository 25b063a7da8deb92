"""The arq worker runs jobs from real Redis against the real database."""

from datetime import UTC, datetime, timedelta

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pointsmall.idempotency.models import IdempotencyKey
from pointsmall.jobs import worker_settings
from pointsmall.settings import Settings
from pointsmall.tenancy.models import SignupIdempotencyKey
from tests.conftest import RUN_ID as RUN
from tests.conftest import TenantClient


async def _keys(tenant: TenantClient, engine: AsyncEngine) -> set[str]:
    async with tenant.db(engine) as session:
        return set((await session.scalars(select(IdempotencyKey.key))).all())


async def test_purge_job_through_the_queue(
    tenants: tuple[TenantClient, TenantClient], engine: AsyncEngine, settings: Settings
) -> None:
    old = datetime.now(UTC) - timedelta(hours=settings.idempotency_ttl_hours + 1)
    for tenant in tenants:
        async with tenant.db(engine) as session, session.begin():
            await session.execute(
                insert(IdempotencyKey),
                [
                    {"key": "old", "fingerprint": b"0" * 32, "created_at": old},
                    {"key": "new", "fingerprint": b"1" * 32, "created_at": datetime.now(UTC)},
                ],
            )
    signup_keys = {f"old-signup-{RUN}": old, f"new-signup-{RUN}": datetime.now(UTC)}
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(
            insert(SignupIdempotencyKey),
            [{"key": k, "response_body": b"", "created_at": t} for k, t in signup_keys.items()],
        )
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))
    try:
        job = await redis.enqueue_job("purge_idempotency_keys", _queue_name=settings.queue_name)
        assert job is not None
        worker = Worker(**worker_settings(settings), burst=True, poll_delay=0.05)
        await worker.main()
        await worker.close()
        removed = await job.result(timeout=10)
    finally:
        await redis.aclose()
    assert removed >= 2  # other tests' tenants may hold old keys too; ours certainly did
    for tenant in tenants:
        assert await _keys(tenant, engine) == {"new"}
    async with AsyncSession(engine) as session:
        left = set(
            await session.scalars(
                select(SignupIdempotencyKey.key).where(SignupIdempotencyKey.key.in_(signup_keys))
            )
        )
    assert left == {f"new-signup-{RUN}"}  # signup's keys are purged too


async def test_sweep_job_through_the_queue(
    tenants: tuple[TenantClient, TenantClient], settings: Settings
) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "sweep"})).json()["id"]
    await a.http.post(
        "/v1/point-types",
        json={
            "key": "gone",
            "name": "Gone",
            "expiry_policy": "fixed_date",
            "expiry_date": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
        },
    )
    await a.http.post(
        "/v1/points/earn",
        json={"member_id": member, "points": 5, "reason": "x", "point_type": "gone"},
    )
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))
    try:
        # The lot expires one second after it was earned; the job runs after that.
        job = await redis.enqueue_job(
            "sweep_points", _queue_name=settings.queue_name, _defer_by=timedelta(seconds=1.5)
        )
        assert job is not None
        # Without the cron entries, so only the queued job sweeps.
        only_queue = worker_settings(settings) | {"cron_jobs": []}
        worker = Worker(**only_queue, burst=True, poll_delay=0.05)
        await worker.main()
        await worker.close()
        totals = await job.result(timeout=10)
    finally:
        await redis.aclose()
    assert totals["expired"] >= 1
    balance = (await a.http.get(f"/v1/members/{member}/balance")).json()["balances"]
    assert next(b for b in balance if b["point_type"] == "gone")["available"] == 0
