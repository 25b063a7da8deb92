"""The harness: a database of this run's own on a real PostgreSQL, a real Redis, and the app
served over real HTTP (uvicorn on a loopback port) in the tests' event loop.

DATABASE_URL / REDIS_URL name the servers (CI sets them to the machine's); without them the
embedded servers start, as with `make run`. The run's database is dropped at the end.
"""

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pointsmall.app import create_app
from pointsmall.auth.schemas import ApiKeyCreate
from pointsmall.auth.services import issue
from pointsmall.cli import _migrate
from pointsmall.embedded import start_postgres, start_redis
from pointsmall.hotpath import create_hot_pool
from pointsmall.migrations import tenant_migrations
from pointsmall.settings import Settings
from pointsmall.tenancy.services import provision
from pointsmall_tenants import create_pooled_engine, tenant_bind
from pointsmall_webhooks.secretbox import new_key_setting

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:10]


def _admin_url(url: str) -> str:
    return Settings(database_url=url).async_database_url


@pytest.fixture(scope="session")
def server_urls() -> tuple[str, str]:
    data_dir = ROOT / ".pointsmall"
    database = os.environ.get("DATABASE_URL") or start_postgres(data_dir)
    redis = os.environ.get("REDIS_URL") or start_redis(data_dir)
    return database, redis


@pytest.fixture(scope="session")
async def settings(server_urls: tuple[str, str]) -> AsyncIterator[Settings]:
    """A fresh database for this run, migrated; dropped when the run ends."""
    base_url, redis_url = server_urls
    name = f"pointsmall_test_{RUN_ID}"
    admin = create_pooled_engine(_admin_url(base_url), isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_admin_url(base_url)).set(database=name).render_as_string(hide_password=False)
    test_settings = Settings(
        database_url=url,
        redis_url=redis_url,
        queue_name=f"pointsmall-test:{RUN_ID}",
        db_pool_size=20,
        db_max_overflow=20,
        log_level="WARNING",
        environment="test",
        webhook_allow_private=True,  # the tests' receivers listen on loopback
        webhook_secret_keys=new_key_setting("test1"),
    )
    await _migrate(test_settings, 2)
    try:
        yield test_settings
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    db = create_pooled_engine(settings.async_database_url, pool_size=5)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
async def hot_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_hot_pool(settings)
    yield pool
    await pool.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serve_asgi(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """An ASGI app on a real loopback socket, in the tests' event loop; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
        await asyncio.sleep(0)  # yield until uvicorn has bound its socket
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """The API, served by `serve_asgi`."""
    async with serve_asgi(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
async def base_url(settings: Settings) -> AsyncIterator[str]:
    async with serving(settings) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as c:
        yield c


@dataclass
class TenantClient:
    """A tenant's id, schema, key and an HTTP client that sends the key."""

    id: str
    schema: str
    api_key: str
    http: httpx.AsyncClient

    def db(self, engine: AsyncEngine) -> AsyncSession:
        return AsyncSession(tenant_bind(engine, self.schema))


async def make_tenant(engine: AsyncEngine, base_url: str, name: str) -> TenantClient:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        tenant = await provision(session, tenant_migrations(), name=name, slug=None)
        key = await issue(session, tenant.id, ApiKeyCreate(name="test", mode="live"))
    schema = "t_" + tenant.id.split("_", 1)[1]
    http = httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key.secret}"}, timeout=30
    )
    return TenantClient(id=tenant.id, schema=schema, api_key=key.secret, http=http)


@pytest.fixture
async def tenants(
    engine: AsyncEngine, base_url: str
) -> AsyncIterator[tuple[TenantClient, TenantClient]]:
    """Every test gets two fresh tenants, A and B."""
    a = await make_tenant(engine, base_url, "Tenant A")
    b = await make_tenant(engine, base_url, "Tenant B")
    yield a, b
    await a.http.aclose()
    await b.http.aclose()


@pytest.fixture
def repo_root() -> Iterator[Path]:
    yield ROOT
