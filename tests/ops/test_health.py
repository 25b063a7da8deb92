"""Health that tells the truth: `/readyz` degraded (not failing) without Redis,
`/healthz/workers` from the heartbeats, `/metrics` with the operations figures and behind a
token; the workers' patient Redis client and the catch-up of missed cron runs."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from arq import Retry
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.app import create_app
from pointsmall.heartbeat import (
    Heartbeat,
    catch_up,
    cron_key,
    heartbeats_key,
    read_cron_successes,
    record_cron_success,
    run_missed_now,
)
from pointsmall.jobs import scheduled, worker_settings
from pointsmall.resilience import fast_redis, patient_redis
from pointsmall.settings import Settings
from tests.conftest import TenantClient, free_port, make_tenant, serve_asgi
from tests.ops.test_faults import Redis


@pytest.fixture
def own_settings(settings: Settings) -> Settings:
    """The run's database, and a queue (so heartbeats and cron records) of this test's own."""
    return replace(settings, queue_name=f"{settings.queue_name}:{time.monotonic_ns()}")


@asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_asgi(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        yield http


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Redis]:
    redis = Redis(tmp_path)
    redis.start()
    yield redis
    redis.kill()


async def test_readyz_is_degraded_not_failing_without_redis(
    own_settings: Settings, private_redis: Redis
) -> None:
    settings = replace(own_settings, redis_url=private_redis.url)
    async with api(settings) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
        private_redis.kill()
        ready = await http.get("/readyz")
        assert ready.status_code == 200  # reads and ledger writes need no Redis
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["redis"].startswith("error:")
        workers = await http.get("/healthz/workers")  # heartbeats live in Redis
        assert workers.status_code == 503
        assert workers.json()["status"] == "unknown"
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert 'pointsmall_metrics_source_up{source="redis"} 0.0' in metrics.text
        assert 'pointsmall_metrics_source_up{source="database"} 1.0' in metrics.text


async def test_workers_health_reads_the_heartbeats(own_settings: Settings) -> None:
    redis = fast_redis(own_settings.redis_url or "", own_settings.queue_name)
    async with api(own_settings) as http, redis:
        nobody = await http.get("/healthz/workers")
        assert nobody.status_code == 503
        assert nobody.json()["missing"] == ["worker", "webhooks-worker", "relay"]

        beats = [Heartbeat(redis, own_settings, r) for r in ("worker", "webhooks-worker", "relay")]
        for beat in beats:
            assert await beat.beat()
        fresh = await http.get("/healthz/workers")
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["status"] == "ok"
        assert {w["role"] for w in fresh.json()["workers"]} == {
            "worker",
            "webhooks-worker",
            "relay",
        }
        assert all(w["age_seconds"] < 5 and not w["stale"] for w in fresh.json()["workers"])

        # A relay killed 40 s ago (stale after 30), and one gone so long it is forgotten.
        key = heartbeats_key(own_settings.queue_name)
        old = msgspec.json.encode({"role": "relay", "at": time.time() - 40}).decode()
        gone = msgspec.json.encode({"role": "relay", "at": time.time() - 400}).decode()
        await redis.hset(key, mapping={"relay:dead:1": old, "relay:gone:2": gone})  # type: ignore[misc]
        stale = await http.get("/healthz/workers")
        assert stale.status_code == 503
        listed = {w["worker"]: w for w in stale.json()["workers"]}
        assert listed["relay:dead:1"]["stale"] and listed["relay:dead:1"]["age_seconds"] >= 40
        assert "relay:gone:2" not in listed
        assert stale.json()["missing"] == []  # the live relay still beats
        assert not await redis.hexists(key, "relay:gone:2")  # type: ignore[misc]

        await redis.hdel(key, "relay:dead:1")  # type: ignore[misc]
        await beats[2].clear()  # a relay that stopped cleanly is not stale: it is missing
        missing = await http.get("/healthz/workers")
        assert missing.status_code == 503 and missing.json()["missing"] == ["relay"]


async def test_metrics_show_the_background_work(
    own_settings: Settings, engine: AsyncEngine
) -> None:
    settings = replace(own_settings, metrics_token="s3cret-token")
    redis = fast_redis(settings.redis_url or "", settings.queue_name)
    async with api(settings) as http, redis:
        tenant = await make_tenant(engine, str(http.base_url), "Metrics")
        async with tenant.http:
            member = (await tenant.http.post("/v1/members", json={"external_id": "m"})).json()
            for _ in range(3):  # no relay runs here: the events wait in the outbox
                earned = await tenant.http.post(
                    "/v1/points/earn",
                    json={"member_id": member["id"], "points": 5, "reason": "metrics"},
                )
                assert earned.status_code == 201
        await record_cron_success(redis, settings.queue_name, "sweep_points")
        beat = Heartbeat(redis, settings, "webhooks-worker")
        beat.counts.update({"succeeded": 3, "retry": 1})
        assert await beat.beat()
        await redis.enqueue_job("sweep_points", _queue_name=settings.queue_name)
        await redis.enqueue_job(
            "sweep_points", _queue_name=settings.queue_name, _defer_by=timedelta(hours=1)
        )

        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        answer = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert answer.status_code == 200
        text = answer.text
    figures: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            figures[name] = float(value)
    assert "pointsmall_requests_total" in text  # Litestar's request metrics are still there
    assert figures["pointsmall_outbox_unpublished_events"] >= 3  # other tests' wait too
    assert figures["pointsmall_outbox_oldest_unpublished_age_seconds"] > 0
    queue = settings.queue_name
    assert figures[f'pointsmall_queue_jobs{{queue="{queue}",state="due"}}'] == 1
    assert figures[f'pointsmall_queue_jobs{{queue="{queue}",state="scheduled"}}'] == 1
    sweep = figures['pointsmall_cron_last_success_timestamp_seconds{job="sweep_points"}']
    assert time.time() - 60 < sweep <= time.time()
    assert figures['pointsmall_webhook_attempts_total{outcome="succeeded"}'] == 3
    assert figures["pointsmall_webhook_success_ratio"] == 0.75
    assert any(k.startswith("pointsmall_worker_heartbeat_age_seconds{") for k in figures)
    assert figures['pointsmall_metrics_source_up{source="database"}'] == 1


async def test_missed_cron_runs_run_at_start(own_settings: Settings) -> None:
    """A worker back after missing a scheduled run of a daily or half-hourly job runs it at
    once; one whose last success is recent keeps the schedule."""
    crons = {job.name: job for job in worker_settings(own_settings)["cron_jobs"]}
    purge, prune = crons["cron:purge_idempotency_keys"], crons["cron:prune_history"]
    redis = fast_redis(own_settings.redis_url or "", own_settings.queue_name)
    async with redis:
        now = time.time()
        await redis.hset(  # type: ignore[misc]
            cron_key(own_settings.queue_name),
            mapping={"purge_idempotency_keys": str(now - 7200), "prune_history": str(now)},
        )
        missed = await catch_up(redis, own_settings.queue_name, [purge, prune])
    assert missed == ["cron:purge_idempotency_keys"]
    started = datetime.now().astimezone()
    assert purge.next_run is not None and purge.next_run <= started
    assert prune.next_run is not None and prune.next_run > started

    # Redis back after an outage: the runs that fell due meanwhile are one run, now.
    prune.next_run = started - timedelta(hours=5)
    run_missed_now([purge, prune], started)
    assert prune.next_run == started


async def test_patient_redis_waits_out_an_outage(private_redis: Redis) -> None:
    redis = patient_redis(private_redis.url, "patient")
    async with redis:
        assert await redis.ping()
        private_redis.kill()

        async def incr() -> int:
            count: int = await redis.incr("counter")
            return count

        waiting = asyncio.create_task(incr())
        await asyncio.sleep(1.5)
        assert not waiting.done()  # arq's loop would have died here
        private_redis.start()  # same port, empty
        assert await asyncio.wait_for(waiting, 10) == 1

        # A connection lost while a key is WATCHed: watched again on a new connection
        # (redis-py would raise WatchError outside EXEC, which arq does not expect).
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch("counter")
            private_redis.kill()
            private_redis.start()
            assert await pipe.get("counter") is None  # the new Redis is empty
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set("counter", 5)
            assert await pipe.execute() == [True]

        # Once the worker is stopping, errors come at once: a shutdown never waits.
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        redis.patience.running = asyncio.ensure_future(done)
        await redis.patience.running
        private_redis.kill()
        with pytest.raises(Exception, match=r"(?i)connect"):
            await asyncio.wait_for(redis.ping(), 5)


async def test_cron_runs_wait_for_the_database(own_settings: Settings) -> None:
    """A cron run that meets a database that is away is retried with backoff (arq `Retry`),
    and a run that succeeds is recorded for the metrics and the catch-up."""

    async def away(ctx: dict[str, Any]) -> None:
        raise ConnectionRefusedError("the database is restarting")

    async def fine(ctx: dict[str, Any]) -> int:
        return 7

    redis = fast_redis(own_settings.redis_url or "", own_settings.queue_name)
    async with redis:
        ctx = {"redis": redis, "settings": own_settings, "job_try": 3}
        with pytest.raises(Retry) as raised:
            await scheduled(away)(ctx)
        assert raised.value.defer_score == 8000
        assert await scheduled(fine)(ctx) == 7
        recorded = await read_cron_successes(redis, own_settings.queue_name)
    assert set(recorded) == {"fine"} and recorded["fine"] > time.time() - 60


async def test_the_api_starts_and_writes_while_redis_is_away(
    own_settings: Settings, tenants: tuple[TenantClient, TenantClient]
) -> None:
    a, _ = tenants
    settings = replace(own_settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with api(settings) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        http.headers["Authorization"] = f"Bearer {a.api_key}"
        member = await http.post("/v1/members", json={"external_id": "no-redis"})
        assert member.status_code == 201, member.text
        earn = {"member_id": member.json()["id"], "points": 5, "reason": "x"}
        assert (await http.post("/v1/points/earn", json=earn)).status_code == 201
