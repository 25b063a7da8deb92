"""Members of one tenant's program (the session is already bound to the tenant)."""

import secrets
from typing import Any

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import Conflict, NotFound
from pointsmall.ids import is_id, new_id
from pointsmall.ledger.models import OutboxEvent
from pointsmall.members import models, schemas
from pointsmall.pagination import newest_first, to_page
from pointsmall.schemas import Page

_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: codes get read aloud


def new_referral_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


def to_schema(member: models.Member) -> schemas.Member:
    return schemas.Member(
        id=member.id,
        external_id=member.external_id,
        email=member.email,
        name=member.name,
        attributes=member.attributes,
        status=member.status,  # type: ignore[arg-type]
        referral_code=member.referral_code,
        created_at=member.created_at,
        updated_at=member.updated_at,
        object="member",
    )


def _exists(external_id: str) -> Conflict:
    return Conflict(f"A member with external_id {external_id!r} exists.", code="member_exists")


async def _flush_guarded(session: AsyncSession, external_id: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise _exists(external_id) from exc


async def create(session: AsyncSession, data: schemas.MemberCreate) -> models.Member:
    # One statement: ON CONFLICT tells a duplicate apart without a savepoint.
    member = (
        await session.scalars(
            pg_insert(models.Member)
            .values(
                id=new_id("mem"),
                external_id=data.external_id,
                email=data.email,
                name=data.name,
                attributes=data.attributes,
                status="active",
                referral_code=new_referral_code(),
            )
            .on_conflict_do_nothing(index_elements=["external_id"])
            .returning(models.Member)
        )
    ).one_or_none()
    if member is None:
        raise _exists(data.external_id)
    # In the same transaction: the webhook relay sends it when (and only if) this commits.
    await session.execute(
        insert(OutboxEvent).values(
            event_id=new_id("evt"),
            type="member.created",
            payload=msgspec.to_builtins(to_schema(member)),
        )
    )
    return member


async def get(session: AsyncSession, member_id: str) -> models.Member:
    member = await session.get(models.Member, member_id) if is_id("mem", member_id) else None
    if member is None:
        raise NotFound("No such member.")
    return member


async def update(
    session: AsyncSession, member_id: str, data: schemas.MemberUpdate
) -> models.Member:
    member = await get(session, member_id)
    changes: dict[str, Any] = msgspec.structs.asdict(data)
    for field, value in changes.items():
        if value is not msgspec.UNSET:
            setattr(member, field, value)
    await _flush_guarded(session, member.external_id)
    await session.refresh(member)
    return member


async def list_members(
    session: AsyncSession, limit: int, starting_after: str | None, external_id: str | None
) -> Page[schemas.Member]:
    query = select(models.Member)
    if external_id is not None:
        query = query.where(models.Member.external_id == external_id)
    rows = (
        await session.scalars(newest_first(query, models.Member.id, limit, starting_after))
    ).all()
    return to_page(rows, limit, to_schema, lambda m: m.id)
