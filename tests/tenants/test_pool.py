"""Pooled connections are retired after a number of uses (bounding the relation cache)."""

from sqlalchemy import text

from pointsmall.settings import Settings
from pointsmall_tenants import create_pooled_engine, tenant_bind


async def test_connection_retired_after_uses(settings: Settings) -> None:
    engine = create_pooled_engine(
        settings.async_database_url, pool_size=1, max_overflow=0, recycle_uses=3
    )
    try:
        pids = []
        for _ in range(7):
            async with engine.connect() as conn:
                pids.append((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        assert pids[0] == pids[1] == pids[2]
        assert pids[3] != pids[2]
        assert pids[3] == pids[4] == pids[5]
        assert pids[6] != pids[5]
    finally:
        await engine.dispose()


async def test_tenant_bind_leaves_no_search_path(settings: Settings) -> None:
    engine = create_pooled_engine(settings.async_database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            before = (await conn.execute(text("SHOW search_path"))).scalar_one()
        async with tenant_bind(engine, "t_whatever").connect() as conn:
            await conn.execute(text("SELECT 1"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SHOW search_path"))).scalar_one() == before
    finally:
        await engine.dispose()
