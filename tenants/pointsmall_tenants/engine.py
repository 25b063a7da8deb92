"""Pooled engines whose connections are recycled, and binds that serve exactly one tenant."""

import zlib
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from pointsmall_tenants.naming import validate_schema_name


def create_pooled_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    recycle_seconds: int = 600,
    recycle_uses: int = 5000,
    statement_cache_size: int = 1000,
    pre_ping: bool = False,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine whose connections are retired by age and by number of checkouts.

    A Postgres backend's relation cache grows with every tenant schema it touches (about
    0.4 MB a tenant), so a long-lived connection serving thousands of tenants grows to
    gigabytes. Retiring connections after `recycle_uses` checkouts bounds that.

    With `schema_translate_map` every tenant's statements are distinct SQL, so each tenant
    needs its own prepared statements: the driver's cache (100 by default) is raised so a
    connection serving many tenants does not re-prepare on nearly every request.

    A connection the server has closed (a database restart) is replaced at checkout by a
    local check of the driver's state. `pre_ping` adds a real round trip per checkout (three
    with asyncpg): for engines that check out rarely (workers). Without it, a connection
    whose loss the driver has not noticed yet fails its first use; that error is a
    disconnect, on which the pool replaces every connection older than it.
    """
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=recycle_seconds,
        pool_pre_ping=pre_ping,
        connect_args={"prepared_statement_cache_size": statement_cache_size}
        | kwargs.pop("connect_args", {}),
        **kwargs,
    )
    _retire_unusable(engine.sync_engine, recycle_uses)
    return engine


def _retire_unusable(engine: Engine, uses: int) -> None:
    @event.listens_for(engine, "checkout")
    def _count(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        record.info["uses"] = record.info.get("uses", 0) + 1
        # The documented way to make the pool drop this connection and open a new one.
        if record.info["uses"] > uses:
            raise exc.DisconnectionError("connection reached its use limit")
        # The driver saw the server close it (a database restart): a local check, no round
        # trip, that spares a request the stale connection.
        is_closed = getattr(record.driver_connection, "is_closed", None)
        if is_closed is not None and is_closed():
            raise exc.DisconnectionError("the server closed the connection")


def tenant_bind(engine: AsyncEngine, schema: str) -> AsyncEngine:
    """A view of `engine` whose unqualified tables live in `schema`.

    Uses `schema_translate_map` (applied per statement, never stored on the pooled
    connection), so a connection can serve another tenant next without leaking a search_path.
    """
    return engine.execution_options(schema_translate_map={None: validate_schema_name(schema)})


class TenantAffineEngines:
    """Several small pools, each serving a fixed share of the tenants (by schema hash).

    A backend pays ~2 ms the first time it serves a tenant (catalog and relation cache loads)
    and keeps that tenant's cache for its lifetime. Sending a tenant always to the same
    sub-pool means each backend serves about 1/shards of the tenants: warmer caches, and a
    relation cache `shards` times smaller per backend.
    """

    def __init__(
        self, url: str, *, shards: int, pool_size: int, max_overflow: int, **kwargs: Any
    ) -> None:
        per_pool = max(1, pool_size // shards)
        overflow = max(0, max_overflow // shards)
        self.engines = [
            create_pooled_engine(url, pool_size=per_pool, max_overflow=overflow, **kwargs)
            for _ in range(max(1, shards))
        ]

    def for_schema(self, schema: str) -> AsyncEngine:
        return self.engines[zlib.crc32(schema.encode()) % len(self.engines)]

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()
