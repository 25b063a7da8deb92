"""Rules (CRUD with versions) and tiers (CRUD, reviews). Events are in `rules.events`."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import Conflict, FieldError, InvalidInput, NotFound
from pointsmall.ids import is_id, new_id
from pointsmall.ledger.models import PointType
from pointsmall.members.services import get as get_member
from pointsmall.rules import engine, models, schemas
from pointsmall.rules.events import TenantSql
from pointsmall.rules.tiers import Tiers, tier_out

_VERSIONED = ("effect", "condition", "point_type", "caps", "schedule", "priority", "stacking")


def _version_id(rule_id: str, version: int) -> str:
    return f"{rule_id}.v{version}"


def _out(rule: models.Rule, version: models.RuleVersion) -> schemas.RuleOut:
    return schemas.RuleOut(
        id=rule.id,
        version_id=version.id,
        version=version.version,
        name=rule.name,
        status=rule.status,
        trigger=version.trigger,
        condition=version.condition,
        effect=engine.effect_from_json(version.effect),
        point_type=version.point_type,
        caps=msgspec.convert(version.caps, schemas.Caps),
        schedule=msgspec.convert(version.schedule, schemas.Schedule),
        priority=version.priority,
        stacking=version.stacking,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


async def _check_point_type(session: AsyncSession, key: str) -> None:
    if await session.get(PointType, key) is None:
        raise InvalidInput(errors=[FieldError(field="point_type", message="no such point type")])


def _version_row(rule_id: str, version: int, trigger: str, data: Any) -> models.RuleVersion:
    return models.RuleVersion(
        id=_version_id(rule_id, version),
        rule_id=rule_id,
        version=version,
        trigger=trigger,
        condition=data.condition,
        effect=msgspec.to_builtins(data.effect),
        point_type=data.point_type,
        caps=msgspec.to_builtins(data.caps),
        schedule=msgspec.to_builtins(data.schedule),
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
    rule = await session.get(models.Rule, rule_id) if is_id("rule", rule_id) else None
    if rule is None:
        raise NotFound("No such rule.")
    version = await session.get(models.RuleVersion, _version_id(rule.id, rule.version))
    assert version is not None
    return rule, version


async def get_rule(session: AsyncSession, rule_id: str) -> schemas.RuleOut:
    return _out(*await _load(session, rule_id))


async def list_rules(session: AsyncSession) -> list[schemas.RuleOut]:
    rows = await session.execute(
        select(models.Rule, models.RuleVersion)
        .join(models.RuleVersion, models.RuleVersion.rule_id == models.Rule.id)
        .where(models.RuleVersion.version == models.Rule.version)
        .order_by(models.Rule.id.desc())
    )
    return [_out(rule, version) for rule, version in rows]


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


async def deactivate_rule(session: AsyncSession, rule_id: str) -> schemas.RuleOut:
    rule, version = await _load(session, rule_id)
    rule.status = "inactive"
    await session.flush()
    await session.refresh(rule)
    return _out(rule, version)


# --- tiers -----------------------------------------------------------------------------


async def create_tier(session: AsyncSession, data: schemas.TierCreate) -> schemas.TierOut:
    if data.window_kind == "rolling_days" and data.window_days is None:
        raise InvalidInput(
            errors=[FieldError(field="window_days", message="required for rolling_days")]
        )
    if await session.get(models.Tier, data.key) is not None:
        raise Conflict(f"A tier {data.key!r} exists.", code="tier_exists")
    tier = models.Tier(
        **{**msgspec.structs.asdict(data), "earn_multiplier": Decimal(data.earn_multiplier)}
    )
    session.add(tier)
    await session.flush()
    return tier_out(tier)


async def list_tiers(session: AsyncSession) -> list[schemas.TierOut]:
    rows = await session.scalars(
        select(models.Tier).order_by(models.Tier.threshold, models.Tier.key)
    )
    return [tier_out(r) for r in rows]


async def tier_history(session: AsyncSession, member_id: str) -> list[schemas.TierChangeOut]:
    member = await get_member(session, member_id)
    rows = await session.scalars(
        select(models.TierChange)
        .where(models.TierChange.member_id == member.id)
        .order_by(models.TierChange.id)
    )
    return [schemas.TierChangeOut(r.from_tier, r.to_tier, r.at, r.reason) for r in rows]


async def review_tiers(pool: asyncpg.Pool, schema: str, now: datetime | None = None) -> int:
    """The recalculation job's work for one tenant: members due a review keep, or lose, their tier."""
    async with pool.acquire() as conn, conn.transaction():
        tenant = TenantSql(conn, schema)
        return await Tiers(conn, tenant.s).review(now or datetime.now(UTC), await tenant.zone())
