"""Time zones: the IANA names this host knows, and the tenant's zone read on a raw driver
connection (the settings row, id 1)."""

import zoneinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo


@cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names of the host's database (what the API accepts); not the
    host's own `localtime` link, `posixrules` or `Factory`."""
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules", "Factory"}


def known_time_zone(name: str) -> bool:
    return name in time_zones()


@cache
def time_zone_pattern() -> str:
    """A regular expression matching exactly `time_zones()`, grouped by region
    (`^(Africa/(Abidjan|Accra|…)|…|UTC|…)$`): what the OpenAPI document says a time zone is.
    A pattern rather than an enum keeps generated clients' type a string, which a newer time
    zone database does not break."""
    regions: dict[str, list[str]] = {}
    for name in sorted(time_zones()):
        region, slash, place = name.partition("/")
        regions.setdefault(region if slash else "", []).append(place if slash else region)
    parts = [f"{region}/({'|'.join(places)})" for region, places in regions.items() if region]
    parts += regions.get("", [])
    return "^(" + "|".join(parts).replace("+", "\\+") + ")$"


async def tenant_zone(conn: Any, quoted_schema: str) -> ZoneInfo:
    name = await conn.fetchval(f"SELECT timezone FROM {quoted_schema}.settings WHERE id = 1")
    return ZoneInfo(name or "UTC")
