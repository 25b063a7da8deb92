"""Tiers: qualification over a window, upgrade at once, downgrade at review with retention.

Qualifying value: `points` — what rules granted for events that occurred in the window,
less what refunds took back; `spend` — the `total` of paid orders in the window, less what
was refunded. Windows are rolling N days, or the calendar year in the tenant's time zone.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import msgspec

from pointsmall.rules import schemas


@dataclass(frozen=True, slots=True)
class TierRule:
    key: str
    name: str
    threshold: int
    basis: str
    window_kind: str
    window_days: int | None
    earn_multiplier: Decimal
    retention_days: int


def window(tier: TierRule, at: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    if tier.window_kind == "calendar_year":
        local = at.astimezone(zone)
        start = datetime(local.year, 1, 1, tzinfo=zone)
        return start, at
    return at - timedelta(days=tier.window_days or 365), at


def review_at(tier: TierRule, since: datetime, zone: tzinfo) -> datetime:
    """When a member who reached `tier` at `since` must qualify again."""
    if tier.window_kind == "calendar_year":
        local = since.astimezone(zone)
        return datetime(local.year + 1, 1, 1, tzinfo=zone)
    return since + timedelta(days=tier.window_days or 365)


class Tiers:
    """Tier queries on one tenant's asyncpg connection (inside the caller's transaction)."""

    def __init__(self, conn: Any, schema_sql: str) -> None:
        self.conn = conn
        self.s = schema_sql

    async def all(self) -> list[TierRule]:
        rows = await self.conn.fetch(f"SELECT * FROM {self.s}.tiers ORDER BY threshold, key")
        return [
            TierRule(
                r["key"],
                r["name"],
                r["threshold"],
                r["basis"],
                r["window_kind"],
                r["window_days"],
                r["earn_multiplier"],
                r["retention_days"],
            )
            for r in rows
        ]

    async def qualifying(
        self, member_id: str, tier: TierRule, at: datetime, zone: tzinfo
    ) -> Decimal:
        start, end = window(tier, at, zone)
        if tier.basis == "points":
            value = await self.conn.fetchval(
                f"SELECT coalesce(sum(points - clawed_back), 0) FROM {self.s}.rule_awards"
                " WHERE member_id = $1 AND occurred_at > $2 AND occurred_at <= $3",
                member_id,
                start,
                end,
            )
        else:
            value = await self.conn.fetchval(
                f"""SELECT coalesce(sum(CASE WHEN type = 'order.paid' THEN (data->>'total')::numeric
                                        ELSE -coalesce((data->>'refunded')::numeric,
                                                       (data->>'refund_total')::numeric, 0) END), 0)
                    FROM {self.s}.events WHERE member_id = $1 AND type IN ('order.paid', 'order.refunded')
                     AND occurred_at > $2 AND occurred_at <= $3""",
                member_id,
                start,
                end,
            )
        return Decimal(value)

    async def best(
        self, member_id: str, at: datetime, zone: tzinfo, tiers: list[TierRule]
    ) -> TierRule | None:
        reached = None
        for tier in tiers:  # ascending threshold
            if await self.qualifying(member_id, tier, at, zone) >= tier.threshold:
                reached = tier
        return reached

    async def current(self, member_id: str) -> tuple[str | None, datetime | None]:
        row = await self.conn.fetchrow(
            f"SELECT tier_key, review_at FROM {self.s}.member_tiers WHERE member_id = $1", member_id
        )
        return (row["tier_key"], row["review_at"]) if row else (None, None)

    async def change(
        self,
        member_id: str,
        old: str | None,
        new: TierRule | None,
        at: datetime,
        zone: tzinfo,
        reason: str,
    ) -> None:
        review = review_at(new, at, zone) if new else None
        await self.conn.execute(
            f"""INSERT INTO {self.s}.member_tiers (member_id, tier_key, since, review_at) VALUES ($1, $2, $3, $4)
                ON CONFLICT (member_id) DO UPDATE SET tier_key = $2, since = $3, review_at = $4""",
            member_id,
            new.key if new else None,
            at,
            review,
        )
        await self.conn.execute(
            f"INSERT INTO {self.s}.tier_changes (member_id, from_tier, to_tier, at, reason) VALUES ($1, $2, $3, $4, $5)",
            member_id,
            old,
            new.key if new else None,
            at,
            reason,
        )
        payload = {
            "member_id": member_id,
            "from_tier": old,
            "to_tier": new.key if new else None,
            "at": utc_text(at),
            "reason": reason,
        }
        await self.conn.execute(
            f"SELECT {self.s}.ledger_event('member.tier_changed', $1::jsonb)",
            msgspec.json.encode(payload).decode(),
        )

    async def upgrade(self, member_id: str, at: datetime, zone: tzinfo) -> None:
        """After an event: move the member up at once if they now qualify for more."""
        tiers = await self.all()
        if not tiers:
            return
        current, _ = await self.current(member_id)
        rank = {t.key: i for i, t in enumerate(tiers)}
        best = await self.best(member_id, at, zone, tiers)
        if best and (current is None or rank[best.key] > rank.get(current, -1)):
            await self.change(member_id, current, best, at, zone, "qualified")

    async def review(self, at: datetime, zone: tzinfo) -> int:
        """At each review: keep a tier still qualified for; otherwise, once the tier's
        retention has passed too, move to the best tier the member qualifies for now."""
        tiers = await self.all()
        by_key = {t.key: t for t in tiers}
        rows = await self.conn.fetch(
            f"SELECT member_id, tier_key, review_at FROM {self.s}.member_tiers"
            " WHERE tier_key IS NOT NULL AND review_at <= $1 ORDER BY member_id FOR UPDATE",
            at,
        )
        changed = 0
        for row in rows:
            tier = by_key.get(row["tier_key"])
            if tier is None:
                continue
            if await self.qualifying(row["member_id"], tier, at, zone) >= tier.threshold:
                await self.conn.execute(
                    f"UPDATE {self.s}.member_tiers SET review_at = $2 WHERE member_id = $1",
                    row["member_id"],
                    review_at(tier, row["review_at"], zone),
                )
                continue
            if at < row["review_at"] + timedelta(days=tier.retention_days):
                continue  # retained for now
            best = await self.best(row["member_id"], at, zone, tiers)
            if best is None or best.key != tier.key:
                await self.change(row["member_id"], tier.key, best, at, zone, "not requalified")
                changed += 1
        return changed


def utc_text(at: datetime) -> str:
    """An instant as the API writes it everywhere: RFC 3339 in UTC, with `Z`."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def tier_out(row: Any) -> schemas.TierOut:
    return schemas.TierOut(
        key=row.key,
        name=row.name,
        threshold=row.threshold,
        basis=row.basis,
        window_kind=row.window_kind,
        window_days=row.window_days,
        earn_multiplier=schemas.canonical(row.earn_multiplier),
        retention_days=row.retention_days,
        benefits=msgspec.convert(row.benefits or [], list[schemas.Benefit]),
        object="tier",
    )
