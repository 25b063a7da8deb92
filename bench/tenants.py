"""make bench-tenants: provision 1,000 tenants, migrate them all, and compare a tenant-scoped
GET with 1 and with 1,000 tenants.

Provisioning is measured as a signup meets it in production: the worker keeps spare schemas
made ahead (`SPARE_SCHEMAS`), and the timed step registers a tenant on one of them. The
spares are made in batches of SPARE_BATCH, off the clock, and their cost per schema is
printed as `cold_provision_ms_median` (what a signup pays when the pool is empty).

Runs against DATABASE_URL (or the embedded server) in a database of its own, dropped at the
end. The API runs as `pointsmall serve` (granian, one process) on a loopback port; requests
go one at a time, so the figure is latency, not throughput. The last line printed is one
JSON object with the figures.
"""

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.harness import api_server, bench_database, new_tenant, seed_members
from pointsmall.migrations import TENANT_LOCATION, tenant_migrations
from pointsmall.tenancy.services import all_schemas, make_spares
from pointsmall_tenants import SchemaMigrations

TENANTS = int(os.environ.get("BENCH_TENANTS", "1000"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
SPARE_BATCH = 50


async def _spares(engine: AsyncEngine, count: int) -> float:
    """Make `count` spare schemas; ms per schema."""
    started = time.perf_counter()
    made = await make_spares(engine, tenant_migrations(), count)
    assert made == count, made
    return (time.perf_counter() - started) * 1000 / count


async def _timed_tenant(engine: AsyncEngine, n: int) -> tuple[float, str, str]:
    """Provision one tenant with a key (timed), then give it a member: (ms, key, member id)."""
    started = time.perf_counter()
    _, schema, key = await new_tenant(engine, f"Bench {n}", slug=f"bench-{n}")
    elapsed = (time.perf_counter() - started) * 1000
    await seed_members(engine, schema, 1)
    return elapsed, key, f"mem_b{1:025d}"


async def _get_latency(port: int, targets: list[tuple[str, str]], requests: int) -> float:
    """Median ms of GET /v1/members/{id}, cycling through the tenants' keys."""
    samples = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for i in range(requests + 200):
            key, member_id = targets[i % len(targets)]
            started = time.perf_counter()
            response = await http.get(
                f"/v1/members/{member_id}", headers={"Authorization": f"Bearer {key}"}
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.text
            if i >= 200:  # the first 200 warm the pool and caches
                samples.append(elapsed)
    return statistics.median(samples)


def _with_extra_revision(root: Path) -> SchemaMigrations:
    location = root / "tenant"
    shutil.copytree(TENANT_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "bench_extra.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "bench0000001"\ndown_revision = {tenant_migrations().head!r}\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        '    op.add_column("members", sa.Column("loyalty_code", sa.String(32)))\n'
        '    op.create_index("ix_members_loyalty_code", "members", ["loyalty_code"])\n'
    )
    return SchemaMigrations(str(location))


async def main() -> None:
    # Keys are checked against the database on every request in both runs (no key cache),
    # so the comparison measures what 1,000 schemas cost, not a cache's hit rate.
    async with bench_database() as db, api_server(db, AUTH_CACHE_SECONDS="0") as port:
        engine = db.engine
        cold_ms = [await _spares(engine, 1)]
        first_ms, key, member = await _timed_tenant(engine, 0)
        targets = [(key, member)]
        one = await _get_latency(port, targets, REQUESTS)
        print(f"GET median with 1 tenant: {one:.3f} ms", flush=True)

        provision_ms = [first_ms]
        for n in range(1, TENANTS):
            if (n - 1) % SPARE_BATCH == 0:
                cold_ms.append(await _spares(engine, min(SPARE_BATCH, TENANTS - n)))
            ms, key, member = await _timed_tenant(engine, n)
            provision_ms.append(ms)
            targets.append((key, member))
            if n % 200 == 0:
                print(
                    f"provisioned {n} tenants, median {statistics.median(provision_ms):.1f} ms",
                    flush=True,
                )
        many = await _get_latency(port, targets, REQUESTS)
        print(f"GET median with {TENANTS} tenants (round robin): {many:.3f} ms", flush=True)

        async with AsyncSession(engine) as session:
            schemas = await all_schemas(session)
        with tempfile.TemporaryDirectory() as tmp:
            report = await _with_extra_revision(Path(tmp)).fan_out(engine, schemas, concurrency=4)
        assert len(report.upgraded) == TENANTS
        print(
            f"migrated {len(report.upgraded)} schemas in {report.seconds:.2f} s (4 connections)",
            flush=True,
        )
        print(
            json.dumps(
                {
                    "tenants": TENANTS,
                    "provision_ms_median": round(statistics.median(provision_ms), 2),
                    "provision_ms_p95": round(statistics.quantiles(provision_ms, n=20)[-1], 2),
                    "cold_provision_ms_median": round(statistics.median(cold_ms), 2),
                    "migrate_1000_s": round(report.seconds, 2),
                    "get_ms_median_1_tenant": round(one, 3),
                    "get_ms_median_1000_tenants": round(many, 3),
                    "latency_ratio": round(many / one, 3),
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
