"""What every benchmark needs: a database of its own (migrated, dropped at the end), the API
as `pointsmall serve` on a loopback port, tenants and members to load."""

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pointsmall.auth.schemas import ApiKeyCreate
from pointsmall.auth.services import issue
from pointsmall.cli import _migrate
from pointsmall.embedded import ensure_services
from pointsmall.migrations import tenant_migrations
from pointsmall.settings import Settings
from pointsmall.tenancy.services import provision
from pointsmall_tenants import create_pooled_engine
from pointsmall_webhooks.secretbox import new_key_setting


@dataclass(frozen=True)
class BenchDb:
    async_url: str
    libpq_url: str
    redis_url: str | None
    engine: AsyncEngine


@asynccontextmanager
async def bench_database(pool_size: int = 4) -> AsyncIterator[BenchDb]:
    base = ensure_services(Settings.from_env())
    name = f"pointsmall_bench_{uuid.uuid4().hex[:8]}"
    admin = create_pooled_engine(base.async_database_url, isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base.async_database_url).set(database=name)
    async_url = url.render_as_string(hide_password=False)
    engine = create_pooled_engine(async_url, pool_size=pool_size)
    try:
        await _migrate(Settings(database_url=async_url, redis_url=base.redis_url), 4)
        yield BenchDb(
            async_url=async_url,
            libpq_url=url.set(drivername="postgresql").render_as_string(hide_password=False),
            redis_url=base.redis_url,
            engine=engine,
        )
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def api_server(db: BenchDb, **env: str) -> AsyncIterator[int]:
    """`pointsmall serve` (one granian process) on a free port; yields the port."""
    port = free_port()
    environment = (
        os.environ
        | {
            "DATABASE_URL": db.libpq_url,
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": "1",
            # Production settings, which need the key ring that seals secrets at rest.
            "WEBHOOK_SECRET_KEYS": os.environ.get("WEBHOOK_SECRET_KEYS") or new_key_setting(),
        }
        | env
    )
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pointsmall",
        "serve",
        env=environment,
        start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        transport = httpx.AsyncHTTPTransport(retries=20)  # refused while it starts
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", transport=transport
        ) as http:
            (await http.get("/healthz")).raise_for_status()
        yield port
    finally:
        if server.returncode is None:
            os.killpg(server.pid, signal.SIGINT)
            await server.wait()


async def new_tenant(
    engine: AsyncEngine, name: str, slug: str | None = None
) -> tuple[str, str, str]:
    """A provisioned tenant: (tenant id, its live schema, a live API key acting on it)."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        tenant = await provision(session, tenant_migrations(), name=name, slug=slug)
        key = await issue(session, tenant.id, ApiKeyCreate(name="bench", mode="live"))
    return tenant.id, "t_" + tenant.id.split("_", 1)[1], key.secret


async def seed_members(engine: AsyncEngine, schema: str, count: int) -> None:
    """Members `mem_b0…01` … (ULID-shaped ids) with a zero balance row each."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f'INSERT INTO "{schema}".members (id, external_id, attributes, status) '
                "SELECT 'mem_b' || lpad(g::text, 25, '0'), 'b' || g, '{}', 'active' FROM generate_series(1, :n) g"
            ),
            {"n": count},
        )
        await conn.execute(
            text(
                f'INSERT INTO "{schema}".balances (member_id, point_type) SELECT id, \'points\' FROM "{schema}".members'
            )
        )
