"""The driver-level pool for single-statement hot writes (the ledger's SQL functions).

SQLAlchemy's pool costs 0.5 to 1.5 ms of CPU per checkout on this path and asyncpg's default
release runs a reset round trip; both dwarf a one-round-trip write. These connections only
ever run single autocommit statements that call schema-pinned functions, so there is no
session state to reset: release skips it. Connections retire after `max_queries` uses
(bounding each backend's relation cache, as the SQLAlchemy pool does by use count).
"""

import asyncio
import logging

import asyncpg

from pointsmall.errors import is_unavailable
from pointsmall.settings import Settings

log = logging.getLogger("pointsmall.hotpath")


async def _no_reset(_: asyncpg.Connection) -> None:
    return None


def libpq_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgres") else url


async def create_hot_pool(
    settings: Settings, server_settings: dict[str, str] | None = None, *, wait: bool = False
) -> asyncpg.Pool:
    """The pool, with one connection made. `wait`: while the database is away, try again
    (every 0.5 s doubling to 5 s) instead of failing, so a worker started before its
    database (both restarted at once) comes up by itself. A connection the server has
    closed is replaced by asyncpg at its next acquire, so no pre-ping is needed later."""
    pause = 0.5
    while True:
        try:
            pool = await asyncpg.create_pool(
                libpq_url(settings.database_url or ""),
                min_size=1,
                max_size=settings.db_pool_size,
                max_queries=settings.db_recycle_uses,
                max_inactive_connection_lifetime=settings.db_recycle_seconds,
                statement_cache_size=1024,
                reset=_no_reset,
                server_settings=server_settings,
            )
        except Exception as exc:
            if not (wait and is_unavailable(exc)):
                raise
            log.warning("database unavailable (%s); trying again in %.1f s", exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
            continue
        assert pool is not None
        return pool
