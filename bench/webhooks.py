"""make bench-webhooks: deliveries per second from the webhook worker to a local receiver,
with 1, 10 and 100 endpoints. Events go into a tenant's outbox in one statement; the clock
runs from their commit until every delivery is recorded as succeeded (relay, arq, signing,
HTTP and the attempt log included). The last line printed is one JSON object."""

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from bench.harness import BenchDb, bench_database, free_port, new_tenant
from pointsmall_webhooks.secretbox import SecretBox, new_key_setting
from pointsmall_webhooks.signing import generate_secret

DELIVERIES = int(os.environ.get("BENCH_DELIVERIES", "20000"))
WORKERS = int(os.environ.get("BENCH_WEBHOOK_WORKERS", "2"))
KEYS = new_key_setting("bench")


@asynccontextmanager
async def process(*argv: str, env: dict[str, str] | None = None) -> AsyncIterator[None]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        env=env,
        start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        if child.returncode is None:
            os.killpg(child.pid, signal.SIGTERM)
            await child.wait()


async def scenario(db: BenchDb, endpoints: int, receiver_port: int) -> dict[str, float]:
    _, schema, _ = await new_tenant(db.engine, f"Hooks {endpoints}")
    box = SecretBox.from_setting(KEYS)
    async with db.engine.begin() as conn:
        for n in range(endpoints):
            endpoint_id = f"wh_b{n:025d}"
            await conn.execute(
                text(
                    f'INSERT INTO "{schema}".webhook_endpoints (id, url, secret) VALUES (:id, :url, :secret)'
                ),
                {
                    "id": endpoint_id,
                    "url": f"http://127.0.0.1:{receiver_port}/e/{n}",
                    "secret": box.encrypt(generate_secret(), endpoint_id),
                },
            )
    events = DELIVERIES // endpoints
    env = os.environ | {
        "DATABASE_URL": db.libpq_url,
        "WEBHOOK_SECRET_KEYS": KEYS,
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "POINTSMALL_QUEUE": f"pointsmall-bench:{schema}",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "20",
    }
    async with _workers(env):
        await asyncio.sleep(3)  # started and listening
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    f'INSERT INTO "{schema}".outbox (event_id, type, payload)'
                    " SELECT 'evt_b' || g, 'points.earned',"
                    " jsonb_build_object('id', 'txn_' || g, 'points', g, 'member_id', 'mem_x')"
                    " FROM generate_series(1, :n) g"
                ),
                {"n": events},
            )
        started = time.perf_counter()
        total = events * endpoints
        marks: list[tuple[float, int]] = []
        while True:
            async with db.engine.connect() as conn:
                done = int(
                    (
                        await conn.execute(
                            text(
                                f"SELECT count(*) FROM \"{schema}\".webhook_deliveries WHERE status = 'succeeded'"
                            )
                        )
                    ).scalar_one()
                )
            marks.append((time.perf_counter() - started, done))
            if done >= total:
                break
            await asyncio.sleep(0.25)
    elapsed = marks[-1][0]
    if os.environ.get("BENCH_VERBOSE"):
        print(" ".join(f"{t:.1f}:{n}" for t, n in marks[::4]), flush=True)
    # Sustained: the rate between 10 % and 90 % of the deliveries (no start-up, no tail).
    low = next(m for m in marks if m[1] >= total * 0.1)
    high = next(m for m in marks if m[1] >= total * 0.9)
    sustained = (high[1] - low[1]) / (high[0] - low[0]) if high[0] > low[0] else total / elapsed
    print(
        f"{endpoints} endpoint(s), {events} events, {total} deliveries: {elapsed:.1f} s,"
        f" {total / elapsed:.0f}/s overall, {sustained:.0f}/s sustained",
        flush=True,
    )
    return {"overall": round(total / elapsed), "sustained": round(sustained)}


@asynccontextmanager
async def _workers(env: dict[str, str]) -> AsyncIterator[None]:
    async with contextlib_all(
        [process("-m", "pointsmall", "webhooks-worker", env=env) for _ in range(WORKERS)]
    ):
        yield


@asynccontextmanager
async def contextlib_all(managers: list) -> AsyncIterator[None]:  # type: ignore[type-arg]
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        for manager in managers:
            await stack.enter_async_context(manager)
        yield


async def main() -> None:
    receiver_port = free_port()
    figures: dict[str, object] = {"workers": WORKERS, "deliveries_per_scenario": DELIVERIES}
    async with process("-m", "bench.receiver", str(receiver_port)), bench_database() as db:
        await asyncio.sleep(0.5)
        for endpoints in [int(n) for n in os.environ.get("BENCH_ENDPOINTS", "1,10,100").split(",")]:
            result = await scenario(db, endpoints, receiver_port)
            figures[f"endpoints_{endpoints}_per_s"] = result["sustained"]
            figures[f"endpoints_{endpoints}_overall_per_s"] = result["overall"]
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
