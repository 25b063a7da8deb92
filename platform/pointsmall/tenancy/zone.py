"""The tenant's time zone, read on a raw driver connection (the settings row, id 1)."""

from typing import Any
from zoneinfo import ZoneInfo


async def tenant_zone(conn: Any, quoted_schema: str) -> ZoneInfo:
    name = await conn.fetchval(f"SELECT timezone FROM {quoted_schema}.settings WHERE id = 1")
    return ZoneInfo(name or "UTC")
