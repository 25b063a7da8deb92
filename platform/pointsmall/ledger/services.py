"""The ledger's writes (one SQL function call each) and reads.

Writes go straight to the tenant schema's plpgsql functions through the driver: one round
trip per earn/spend/adjust/reverse, the idempotency key claimed inside the same call.
Reads use the request's SQLAlchemy session.
"""

from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import ApiError, Conflict, FieldError, InvalidInput, NotFound
from pointsmall.idempotency.middleware import Idempotency
from pointsmall.ledger import models, schemas
from pointsmall.members.services import get as get_member
from pointsmall.pagination import by_key, newest_first, to_page
from pointsmall.rules.models import MemberTier
from pointsmall.schemas import Page
from pointsmall_tenants import quoted_schema

_ERRORS: dict[str, ApiError] = {
    "insufficient_points": Conflict("Not enough available points.", code="insufficient_points"),
    "member_not_found": NotFound("No such member."),
    "not_found": NotFound("No such transaction."),
    "member_suspended": Conflict("The member is suspended.", code="member_suspended"),
    # An unknown point type is a missing object, as an unknown member is.
    "point_type_not_found": NotFound("No such point type."),
    "already_reversed": Conflict("The transaction is already reversed.", code="already_reversed"),
    "already_released": Conflict(
        "The transaction's pending points were already released.", code="already_released"
    ),
    "not_pending": Conflict(
        "The transaction is not an earn that went to pending points.", code="not_pending"
    ),
    "cannot_reverse_reversal": Conflict(
        "A reversal cannot be reversed.", code="cannot_reverse_reversal"
    ),
    "not_reversible": Conflict("Expiries and releases cannot be reversed.", code="not_reversible"),
    "points_already_spent": Conflict(
        "Some of these points were spent and the point type allows no debt.",
        code="points_already_spent",
    ),
    "idempotency_conflict": Conflict(
        "This Idempotency-Key was used with a different request.", code="idempotency_conflict"
    ),
}


class Written(msgspec.Struct, frozen=True):
    """A write's outcome: the transaction, its HTTP status, and whether it was a replay."""

    body: schemas.Transaction
    status: int
    replayed: bool

    @property
    def transaction(self) -> schemas.Transaction:
        return self.body


_written = msgspec.json.Decoder(Written)


def decode_written(raw: str) -> Written:
    """Decode what a ledger function returned (its JSON as text)."""
    return _written.decode(raw)


async def _call(pool: asyncpg.Pool, schema: str, function: str, *args: Any) -> Written:
    placeholders = ", ".join(f"${i}" for i in range(1, len(args) + 1))
    sql = f"SELECT {quoted_schema(schema)}.{function}({placeholders})::text"
    try:
        result = await pool.fetchval(sql, *args)
    except asyncpg.exceptions.RaiseError as exc:
        raise api_error(exc) from None
    return _written.decode(result)


def api_error(exc: asyncpg.exceptions.RaiseError) -> Exception:
    """The API's answer to an error a ledger function raised (unknown ones pass through)."""
    known = _ERRORS.get(exc.message)
    if known is None:
        return exc
    return type(known)(known.detail, status=known.status, code=known.code, errors=known.errors)


async def earn(
    pool: asyncpg.Pool,
    schema: str,
    data: schemas.EarnCreate,
    *,
    granted_by: str,
    rule_version: str | None = None,
    now: datetime | None = None,
    idem: Idempotency = Idempotency(),
) -> Written:
    return await _call(
        pool,
        schema,
        "ledger_credit",
        "earn",
        data.member_id,
        data.point_type,
        data.points,
        data.reason,
        data.reference,
        granted_by,
        rule_version,
        now,
        idem.key,
        idem.fingerprint,
    )


async def spend(
    pool: asyncpg.Pool,
    schema: str,
    data: schemas.SpendCreate,
    *,
    granted_by: str,
    now: datetime | None = None,
    idem: Idempotency = Idempotency(),
) -> Written:
    return await _call(
        pool,
        schema,
        "ledger_debit",
        "spend",
        data.member_id,
        data.point_type,
        data.points,
        data.reason,
        data.reference,
        granted_by,
        now,
        idem.key,
        idem.fingerprint,
    )


async def adjust(
    pool: asyncpg.Pool,
    schema: str,
    data: schemas.AdjustCreate,
    *,
    granted_by: str,
    now: datetime | None = None,
    idem: Idempotency = Idempotency(),
) -> Written:
    if data.points == 0:
        raise InvalidInput(
            "The request is invalid.", errors=[FieldError(field="points", message="must not be 0")]
        )
    if data.points > 0:
        return await _call(
            pool,
            schema,
            "ledger_credit",
            "adjust",
            data.member_id,
            data.point_type,
            data.points,
            data.reason,
            data.reference,
            granted_by,
            None,
            now,
            idem.key,
            idem.fingerprint,
        )
    return await _call(
        pool,
        schema,
        "ledger_debit",
        "adjust",
        data.member_id,
        data.point_type,
        -data.points,
        data.reason,
        data.reference,
        granted_by,
        now,
        idem.key,
        idem.fingerprint,
    )


async def reverse(
    pool: asyncpg.Pool,
    schema: str,
    transaction_id: str,
    data: schemas.ReverseCreate,
    *,
    granted_by: str,
    now: datetime | None = None,
    idem: Idempotency = Idempotency(),
) -> Written:
    return await _call(
        pool,
        schema,
        "ledger_reverse",
        transaction_id,
        data.reason,
        granted_by,
        now,
        idem.key,
        idem.fingerprint,
    )


async def sweep(pool: asyncpg.Pool, schema: str, now: datetime | None = None) -> tuple[int, int]:
    """Release matured pending lots, then expire what is due. Returns (released, expired)."""
    name = quoted_schema(schema)
    async with pool.acquire() as conn, conn.transaction():
        released = await conn.fetchval(
            f"SELECT {name}.ledger_release(coalesce($1, now()), NULL)", now
        )
        expired = await conn.fetchval(f"SELECT {name}.ledger_expire(coalesce($1, now()))", now)
    return int(released), int(expired)


async def release(
    pool: asyncpg.Pool,
    schema: str,
    transaction_id: str,
    *,
    now: datetime | None = None,
    idem: Idempotency = Idempotency(),
) -> Written:
    """Release one earn's pending points now (point types with the `manual` policy); the
    answer is the release transaction."""
    return await _call(
        pool, schema, "ledger_release_one", transaction_id, now, idem.key, idem.fingerprint
    )


# --- reads -----------------------------------------------------------------------------


async def balance(
    session: AsyncSession, member_id: str, *, buckets: int = 5
) -> schemas.MemberBalance:
    member = await get_member(session, member_id)
    rows = (
        await session.scalars(
            select(models.Balance)
            .where(models.Balance.member_id == member.id)
            .order_by(models.Balance.point_type)
        )
    ).all()
    expiring = (
        await session.execute(
            select(models.Lot.point_type, models.Lot.expires_at, func.sum(models.Lot.remaining))
            .where(
                models.Lot.member_id == member.id,
                models.Lot.remaining > 0,
                models.Lot.expires_at.is_not(None),
                models.Lot.expires_at > func.now(),
            )
            .group_by(models.Lot.point_type, models.Lot.expires_at)
            .order_by(models.Lot.expires_at)
        )
    ).all()
    by_type: dict[str, list[schemas.Expiring]] = {}
    for point_type, expires_at, points in expiring:
        if len(by_type.setdefault(point_type, [])) < buckets:
            bucket = schemas.Expiring(points=int(points), expires_at=expires_at)  # type: ignore[arg-type]
            by_type[point_type].append(bucket)
    balances = [
        schemas.PointBalance(
            point_type=row.point_type,
            available=row.available,
            pending=row.pending,
            lifetime_earned=row.lifetime_earned,
            expiring=by_type.get(row.point_type, []),
        )
        for row in rows
    ]
    if not any(b.point_type == "points" for b in balances):
        balances.insert(0, schemas.PointBalance("points", 0, 0, 0, []))
    tier = await session.scalar(
        select(MemberTier.tier_key).where(MemberTier.member_id == member.id)
    )
    return schemas.MemberBalance(member_id=member.id, tier=tier, balances=balances)


def _transaction(row: models.LedgerTransaction) -> schemas.Transaction:
    return schemas.Transaction(
        id=row.id,
        kind=row.kind,  # type: ignore[arg-type]  # the column holds only these kinds
        member_id=row.member_id,
        point_type=row.point_type,
        points=row.points,
        reason=row.reason,
        reference=row.reference,
        reverses=row.reverses,
        granted_by=row.granted_by,
        created_at=row.created_at,
        object="transaction",
    )


async def history(
    session: AsyncSession,
    member_id: str,
    *,
    limit: int,
    starting_after: str | None,
    kind: str | None,
    created_gte: datetime | None,
    created_lt: datetime | None,
) -> Page[schemas.Transaction]:
    member = await get_member(session, member_id)
    query = select(models.LedgerTransaction).where(models.LedgerTransaction.member_id == member.id)
    if kind:
        query = query.where(models.LedgerTransaction.kind == kind)
    if created_gte:
        query = query.where(models.LedgerTransaction.created_at >= created_gte)
    if created_lt:
        query = query.where(models.LedgerTransaction.created_at < created_lt)
    rows = (
        await session.scalars(
            newest_first(query, models.LedgerTransaction.id, limit, starting_after)
        )
    ).all()
    return to_page(rows, limit, _transaction, lambda t: t.id)


# --- point types -----------------------------------------------------------------------


def _point_type(row: models.PointType) -> schemas.PointTypeOut:
    return schemas.PointTypeOut(
        key=row.key,
        name=row.name,
        expiry_policy=row.expiry_policy,  # type: ignore[arg-type]  # the API wrote only these
        expiry_days=row.expiry_days,
        expiry_date=row.expiry_date,
        expiry_period=row.expiry_period,  # type: ignore[arg-type]
        pending_policy=row.pending_policy,  # type: ignore[arg-type]
        pending_days=row.pending_days,
        allow_negative=row.allow_negative,
        created_at=row.created_at,
        object="point_type",
    )


def _expiry_problems(policy: str, values: dict[str, Any]) -> list[FieldError]:
    """What is wrong with an expiry policy's fields: one it needs is missing, or one it
    does not use is given (a `never` type with expiry_days would be a silent mistake)."""
    uses = schemas.EXPIRY_USES[policy]
    return [
        FieldError(field=name, message=f"required for expiry_policy {policy}")
        for name in schemas.EXPIRY_NEEDS[policy]
        if values.get(name) is None
    ] + [
        FieldError(field=name, message=f"does not apply to expiry_policy {policy}")
        for name in schemas.EXPIRY_FIELDS
        if name not in uses and values.get(name) is not None
    ]


def _pending_problems(policy: str, days: int | None) -> list[FieldError]:
    if policy == "days" and days is None:
        return [FieldError(field="pending_days", message="required for pending_policy days")]
    if policy != "days" and days is not None:
        message = f"does not apply to pending_policy {policy}"
        return [FieldError(field="pending_days", message=message)]
    return []


async def create_point_type(
    session: AsyncSession, data: schemas.PointTypeCreate
) -> schemas.PointTypeOut:
    values = msgspec.structs.asdict(data)
    if data.expiry_date is not None:
        values["expiry_date"] = schemas.to_utc(data.expiry_date)
    errors = _expiry_problems(data.expiry_policy, values)
    errors += _pending_problems(data.pending_policy, data.pending_days)
    if errors:
        raise InvalidInput("The request is invalid.", errors=errors)
    row = (
        await session.scalars(
            pg_insert(models.PointType)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(models.PointType)
        )
    ).one_or_none()
    if row is None:
        raise Conflict(f"A point type {data.key!r} exists.", code="point_type_exists")
    return _point_type(row)


async def update_point_type(
    session: AsyncSession, key: str, data: schemas.PointTypeUpdate
) -> schemas.PointTypeOut:
    """Change a point type's name or policies (the default `points` type too). Sending a
    policy replaces it with what the body says (422 as on create); sending only a policy's
    fields changes them on the stored policy (409 `policy_mismatch` when they do not fit
    it). Credits from now on follow the type; lots already credited keep their expiry and
    availability."""
    row = await session.get(models.PointType, key, with_for_update=True)
    if row is None:
        raise NotFound("No such point type.")
    sent = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if isinstance(sent.get("expiry_date"), datetime):
        sent["expiry_date"] = schemas.to_utc(sent["expiry_date"])
    invalid: list[FieldError] = []
    mismatched: list[FieldError] = []
    if "expiry_policy" in sent:
        expiry = {name: sent.get(name) for name in schemas.EXPIRY_FIELDS}
        invalid += _expiry_problems(sent["expiry_policy"], expiry)
    else:
        expiry = {name: sent.get(name, getattr(row, name)) for name in schemas.EXPIRY_FIELDS}
        mismatched += _expiry_problems(row.expiry_policy, expiry)
    if "pending_policy" in sent:
        pending_days = sent.get("pending_days")
        invalid += _pending_problems(sent["pending_policy"], pending_days)
    else:
        pending_days = sent.get("pending_days", row.pending_days)
        mismatched += _pending_problems(row.pending_policy, pending_days)
    if invalid:
        raise InvalidInput("The request is invalid.", errors=invalid)
    if mismatched:
        raise Conflict(
            "The fields do not fit the point type's policy; send the policy with them.",
            code="policy_mismatch",
            errors=mismatched,
        )
    for name, value in {**sent, **expiry, "pending_days": pending_days}.items():
        setattr(row, name, value)
    await session.flush()
    return _point_type(row)


async def list_point_types(
    session: AsyncSession, limit: int, starting_after: str | None
) -> Page[schemas.PointTypeOut]:
    """Point types in key order."""
    query = by_key(select(models.PointType), models.PointType.key, limit, starting_after)
    rows = (await session.scalars(query)).all()
    return to_page(rows, limit, _point_type, lambda p: p.key)
