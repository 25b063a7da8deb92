"""make bench-mall: redemption orders per second through POST /v1/orders at 32 connections,
on one hot product (stock 1,000,000) and spread over 1,000 products. The last line printed
is one JSON object with the figures."""

import asyncio
import json
import os

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness import api_server, bench_database, new_tenant, seed_members
from bench.loadgen import LoadResult, post_request, run_load

SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
MEMBERS = 1000
PRODUCTS = 1000


async def _seed(engine: AsyncEngine, schema: str) -> None:
    s = f'"{schema}"'
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"INSERT INTO {s}.products (id, name, kind, points_price, stock, images, status, created_at, updated_at)"
                " SELECT 'prod_b' || lpad(g::text, 25, '0'), 'P' || g, 'physical', 1, CASE WHEN g = 0 THEN 1000000 ELSE 100000 END,"
                " '[]', 'active', now(), now() FROM generate_series(0, :n) g"
            ),
            {"n": PRODUCTS},
        )
        await conn.execute(
            text(
                f"SELECT {s}.ledger_credit('earn', m.id, 'points', 1000000, 'seed', NULL, 'bench', NULL, NULL, NULL, NULL)"
                f" FROM {s}.members m"
            )
        )


async def _orders(port: int, key: str, spread: bool) -> LoadResult:
    host = f"127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}

    def order(n: int) -> bytes:
        product = (n * 7919) % PRODUCTS + 1 if spread else 0
        body = msgspec.json.encode(
            {
                "member_id": f"mem_b{(n * 104729) % MEMBERS + 1:025d}",
                "lines": [{"product_id": f"prod_b{product:025d}", "quantity": 1}],
            }
        )
        return post_request(host, "/v1/orders", body, auth)

    result = await run_load("127.0.0.1", port, order, connections=32, seconds=SECONDS)
    assert set(result.statuses) == {201}, result.statuses
    return result


async def main() -> None:
    async with bench_database() as db:
        _, schema, key = await new_tenant(db.engine, "Mall bench")
        await seed_members(db.engine, schema, MEMBERS)
        await _seed(db.engine, schema)
        async with api_server(db, DB_POOL_SIZE="32", DB_MAX_OVERFLOW="0") as port:
            hot = await _orders(port, key, spread=False)
            print(
                f"one hot product: {hot.rps:.0f} orders/s, p50 {hot.p50:.1f} ms, p99 {hot.percentile(0.99):.1f} ms",
                flush=True,
            )
            spread = await _orders(port, key, spread=True)
            print(
                f"over {PRODUCTS} products: {spread.rps:.0f} orders/s, p50 {spread.p50:.1f} ms, "
                f"p99 {spread.percentile(0.99):.1f} ms",
                flush=True,
            )
    print(
        json.dumps(
            {
                "hot_product_orders_rps": round(hot.rps),
                "hot_p99_ms": round(hot.percentile(0.99), 2),
                "spread_orders_rps": round(spread.rps),
                "spread_p99_ms": round(spread.percentile(0.99), 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
