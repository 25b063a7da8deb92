"""make bench-tenants: provision 1,000 tenants, migrate them all, and compare a tenant-scoped
GET with 1 and with 1,000 tenants.

Runs against DATABASE_URL (or the embedded server) in a database of its own, dropped at the
end. The API runs as `pointsmall serve` (granian, one process) on a loopback port; requests
go one at a time, so the figure is latency, not throughput. The last line printed is one
JSON object with the figures.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import insert, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pointsmall.auth.schemas import ApiKeyCreate
from pointsmall.auth.services import issue
from pointsmall.cli import _migrate
from pointsmall.embedded import ensure_services
from pointsmall.members.models import Member
from pointsmall.migrations import TENANT_LOCATION, tenant_migrations
from pointsmall.settings import Settings
from pointsmall.tenancy.services import all_schemas, provision
from pointsmall_tenants import SchemaMigrations, create_pooled_engine

TENANTS = int(os.environ.get("BENCH_TENANTS", "1000"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))


async def _new_tenant(engine: AsyncEngine, n: int) -> tuple[float, str, str]:
    """Provision one tenant with a key and a member; returns (ms, key, member id)."""
    migrations = tenant_migrations()
    started = time.perf_counter()
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        tenant = await provision(session, migrations, name=f"Bench {n}", slug=f"bench-{n}")
        key = await issue(session, tenant.id, ApiKeyCreate(name="bench"))
    elapsed = (time.perf_counter() - started) * 1000
    member_id = f"mem_{uuid.uuid4().hex[:26]}"
    member_id = "mem_" + member_id[4:].translate(str.maketrans("ilou", "0123"))
    schema = "t_" + tenant.id.split("_", 1)[1]
    async with engine.begin() as conn:
        bound = await conn.execution_options(schema_translate_map={None: schema})
        await bound.execute(
            insert(Member).values(id=member_id, external_id="m1", attributes={}, status="active")
        )
    return elapsed, key.secret, member_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


async def _wait_until_serving(port: int) -> None:
    transport = httpx.AsyncHTTPTransport(retries=10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", transport=transport) as http:
        (await http.get("/healthz")).raise_for_status()


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
    base = ensure_services(Settings.from_env())
    name = f"pointsmall_bench_{uuid.uuid4().hex[:8]}"
    admin = create_pooled_engine(base.async_database_url, isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base.async_database_url).set(database=name).render_as_string(hide_password=False)
    settings = Settings(database_url=url, redis_url=base.redis_url)
    engine = create_pooled_engine(url, pool_size=4)
    server = None
    try:
        await _migrate(settings, 4)
        port = _free_port()
        env = os.environ | {"DATABASE_URL": url, "PORT": str(port), "LOG_LEVEL": "WARNING"}
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pointsmall",
            "serve",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        await _wait_until_serving(port)

        first_ms, key, member = await _new_tenant(engine, 0)
        targets = [(key, member)]
        one = await _get_latency(port, targets, REQUESTS)
        print(f"GET median with 1 tenant: {one:.3f} ms", flush=True)

        provision_ms = [first_ms]
        for n in range(1, TENANTS):
            ms, key, member = await _new_tenant(engine, n)
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

        figures = {
            "tenants": TENANTS,
            "provision_ms_median": round(statistics.median(provision_ms), 2),
            "provision_ms_p95": round(statistics.quantiles(provision_ms, n=20)[-1], 2),
            "migrate_1000_s": round(report.seconds, 2),
            "get_ms_median_1_tenant": round(one, 3),
            "get_ms_median_1000_tenants": round(many, 3),
            "latency_ratio": round(many / one, 3),
        }
        print(json.dumps(figures))
    finally:
        if server is not None and server.returncode is None:
            os.killpg(server.pid, signal.SIGINT)
            await server.wait()
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())
