"""Rules (CRUD with versions) and tiers (CRUD, reviews). Events are in `rules.events`."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import Conflict, FieldError, InvalidInput, NotFound
from pointsmall.ids import is_id, new_id
from pointsmall.ledger.models import PointType
from pointsmall.ledger.schemas import to_utc
from pointsmall.members.services import get as get_member
from pointsmall.pagination import newest_first, to_page
from pointsmall.rules import engine, models, schemas
from pointsmall.rules.events import TenantSql
from pointsmall.rules.tiers import Tiers, tier_out
from pointsmall.schemas import Page

_VERSIONED = ("effect", "condition", "point_type", "caps", "schedule", "priority", "stacking")


def _version_id(rule_id: str, version: int) -> str:
    return f"{rule_id}.v{version}"


def _utc(at: datetime | None) -> datetime | None:
    return at and to_utc(at)


def utc_schedule(schedule: schemas.Schedule) -> schemas.Schedule:
    """The schedule with its instants in UTC (as it is stored and answered)."""
    return msgspec.structs.replace(
        schedule, starts_at=_utc(schedule.starts_at), ends_at=_utc(schedule.ends_at)
    )


def _out(rule: models.Rule, version: models.RuleVersion) -> schemas.RuleOut:
    return schemas.RuleOut(
        id=rule.id,
        version_id=version.id,
        version=version.version,
        name=rule.name,
        status=rule.status,  # type: ignore[arg-type]  # the API writes only these
        trigger=version.trigger,
        condition=version.condition,
        effect=engine.effect_from_json(version.effect),
        point_type=version.point_type,
        caps=msgspec.convert(version.caps, schemas.Caps),
        schedule=utc_schedule(msgspec.convert(version.schedule, schemas.Schedule)),
        priority=version.priority,
        stacking=version.stacking,  # type: ignore[arg-type]
        created_at=rule.created_at,
        updated_at=rule.updated_at,
        object="rule",
    )


async def _check_point_type(session: AsyncSession, key: str) -> None:
    if await session.get(PointType, key) is None:
        raise Conflict(
            f"There is no point type {key!r}; create it first.", code="unknown_point_type"
        )


def _version_row(rule_id: str, version: int, trigger: str, data: Any) -> models.RuleVersion:
    return models.RuleVersion(
        id=_version_id(rule_id, version),
        rule_id=rule_id,
        version=version,
        trigger=trigger,
        condition=data.condition,
        effect=msgspec.to_builtins(engine.canonical_effect(data.effect)),
        point_type=data.point_type,
        caps=msgspec.to_builtins(data.caps),
        schedule=msgspec.to_builtins(utc_schedule(data.schedule)),
        priority=data.priority,
        stacking=data.stacking,
    )


async def create_rule(session: AsyncSession, data: schemas.RuleCreate) -> schemas.RuleOut:
    engine.compile_condition(data.condition)
    engine.check_effect(data.effect)
    await _check_point_type(session, data.point_type)
    rule = models.Rule(
        id=new_id("rule"), name=data.name, trigger=data.trigger, status=data.status, version=1
    )
    session.add(rule)
    await session.flush()
    version = _version_row(rule.id, 1, data.trigger, data)
    session.add(version)
    await session.flush()
    await session.refresh(rule)
    return _out(rule, version)


async def _load(session: AsyncSession, rule_id: str) -> tuple[models.Rule, models.RuleVersion]:
    """A rule that is not deleted (a deleted one is 404, as if it never was)."""
    rule = await session.get(models.Rule, rule_id) if is_id("rule", rule_id) else None
    if rule is None or rule.deleted_at is not None:
        raise NotFound("No such rule.")
    version = await session.get(models.RuleVersion, _version_id(rule.id, rule.version))
    assert version is not None
    return rule, version


async def get_rule(session: AsyncSession, rule_id: str) -> schemas.RuleOut:
    return _out(*await _load(session, rule_id))


async def list_rules(
    session: AsyncSession, limit: int, starting_after: str | None, status: str | None
) -> Page[schemas.RuleOut]:
    """Rules not deleted, newest first; `status` keeps the active or the inactive ones."""
    query = (
        select(models.Rule, models.RuleVersion)
        .join(models.RuleVersion, models.RuleVersion.rule_id == models.Rule.id)
        .where(models.RuleVersion.version == models.Rule.version, models.Rule.deleted_at.is_(None))
    )
    if status is not None:
        query = query.where(models.Rule.status == status)
    rows = (await session.execute(newest_first(query, models.Rule.id, limit, starting_after))).all()
    return to_page(rows, limit, lambda row: _out(row[0], row[1]), lambda row: row[0].id)


async def update_rule(
    session: AsyncSession, rule_id: str, data: schemas.RuleUpdate
) -> schemas.RuleOut:
    rule, current = await _load(session, rule_id)
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if "name" in changes:
        rule.name = changes["name"]
    if "status" in changes:
        rule.status = changes["status"]
    if any(field in changes for field in _VERSIONED):
        merged = _out(rule, current)
        merged = msgspec.structs.replace(
            merged, **{k: changes[k] for k in _VERSIONED if k in changes}
        )
        engine.compile_condition(merged.condition)
        engine.check_effect(merged.effect)
        await _check_point_type(session, merged.point_type)
        rule.version += 1
        current = _version_row(rule.id, rule.version, rule.trigger, merged)
        session.add(current)
    await session.flush()
    await session.refresh(rule)
    return _out(rule, current)


async def delete_rule(session: AsyncSession, rule_id: str) -> schemas.RuleDeleted:
    """Mark the rule deleted (and inactive): it judges no more events, GET is 404 and lists
    leave it out. The rows stay, since credits, awards and caps name its versions."""
    rule, _ = await _load(session, rule_id)
    rule.status = "inactive"
    rule.deleted_at = datetime.now(UTC)
    await session.flush()
    return schemas.RuleDeleted(id=rule.id, deleted=True, object="rule")


# --- tiers -----------------------------------------------------------------------------


async def create_tier(session: AsyncSession, data: schemas.TierCreate) -> schemas.TierOut:
    if data.window_kind == "rolling_days" and data.window_days is None:
        raise InvalidInput(
            errors=[FieldError(field="window_days", message="required for rolling_days")]
        )
    if await session.get(models.Tier, data.key) is not None:
        raise Conflict(f"A tier {data.key!r} exists.", code="tier_exists")
    tier = models.Tier(
        **{
            **msgspec.structs.asdict(data),
            "earn_multiplier": Decimal(data.earn_multiplier),
            "benefits": msgspec.to_builtins(data.benefits),
        }
    )
    session.add(tier)
    await session.flush()
    return tier_out(tier)


async def list_tiers(
    session: AsyncSession, limit: int, starting_after: str | None
) -> Page[schemas.TierOut]:
    """The ladder: threshold ascending, then key; `starting_after` is a tier's key (404 if
    there is no such tier)."""
    query = select(models.Tier)
    if starting_after:
        after = await session.get(models.Tier, starting_after)
        if after is None:
            raise NotFound("starting_after names no tier.")
        query = query.where(
            tuple_(models.Tier.threshold, models.Tier.key) > tuple_(after.threshold, after.key)
        )
    query = query.order_by(models.Tier.threshold, models.Tier.key).limit(limit + 1)
    rows = (await session.scalars(query)).all()
    return to_page(rows, limit, tier_out, lambda t: t.key)


TIER_CHANGE_PREFIX = "tch_"


def _tier_change(row: models.TierChange) -> schemas.TierChangeOut:
    return schemas.TierChangeOut(
        id=f"{TIER_CHANGE_PREFIX}{row.id}",
        member_id=row.member_id,
        from_tier=row.from_tier,
        to_tier=row.to_tier,
        at=row.at.astimezone(UTC),
        reason=row.reason,
        object="tier_change",
    )


async def tier_history(
    session: AsyncSession, member_id: str, limit: int, starting_after: str | None
) -> Page[schemas.TierChangeOut]:
    """The member's tier changes, newest first (the order they were made)."""
    member = await get_member(session, member_id)
    query = select(models.TierChange).where(models.TierChange.member_id == member.id)
    if starting_after:
        query = query.where(
            models.TierChange.id < int(starting_after.removeprefix(TIER_CHANGE_PREFIX))
        )
    query = query.order_by(models.TierChange.id.desc()).limit(limit + 1)
    rows = (await session.scalars(query)).all()
    return to_page(rows, limit, _tier_change, lambda r: f"{TIER_CHANGE_PREFIX}{r.id}")


async def review_tiers(pool: asyncpg.Pool, schema: str, now: datetime | None = None) -> int:
    """The recalculation job's work for one tenant: members due a review keep, or lose, their tier."""
    async with pool.acquire() as conn, conn.transaction():
        tenant = TenantSql(conn, schema)
        return await Tiers(conn, tenant.s).review(now or datetime.now(UTC), await tenant.zone())
