"""The catalog (categories, products, virtual codes) and coupon checks at the merchant's
checkout. Orders live in `orders.py`."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import asyncpg
import msgspec
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import Conflict, FieldError, InvalidInput, NotFound
from pointsmall.ids import is_id, new_id
from pointsmall.mall import models, schemas
from pointsmall.pagination import newest_first, to_page
from pointsmall.rules.models import Tier
from pointsmall.schemas import Page
from pointsmall.tenancy.models import TenantSettings
from pointsmall_tenants import quoted_schema


def _product(row: models.Product) -> schemas.Product:
    return schemas.Product(
        id=row.id,
        name=row.name,
        kind=row.kind,
        points_price=row.points_price,
        cash_price=str(row.cash_price) if row.cash_price is not None else None,
        currency=row.currency,
        description=row.description,
        category=row.category,
        stock=row.stock,
        per_member_limit=row.per_member_limit,
        per_period_limit=row.per_period_limit,
        limit_period=row.limit_period,
        tiers=row.tiers,
        available_from=row.available_from,
        available_until=row.available_until,
        images=row.images,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _invalid(field: str, message: str, code: str = "validation_error") -> InvalidInput:
    return InvalidInput(message, code=code, errors=[FieldError(field=field, message=message)])


async def _check_tiers(session: AsyncSession, tiers: list[str] | None) -> None:
    """A product for a tier that does not exist could never be ordered: refuse it."""
    if not tiers:
        return
    known = set((await session.scalars(select(Tier.key))).all())
    unknown = [key for key in dict.fromkeys(tiers) if key not in known]
    if unknown:
        message = f"no such tier: {', '.join(unknown)}"
        raise InvalidInput(
            f"Unknown tiers: {', '.join(unknown)}; the tenant's tiers are:"
            f" {', '.join(sorted(known)) or 'none'}.",
            code="unknown_tier",
            errors=[FieldError(field="tiers", message=message)],
        )


async def create_product(session: AsyncSession, data: schemas.ProductCreate) -> schemas.Product:
    settings = await session.get_one(TenantSettings, 1)
    if data.category is not None and await session.get(models.Category, data.category) is None:
        raise _invalid("category", "no such category", code="unknown_category")
    if data.kind == "virtual" and data.stock is not None:
        raise _invalid("stock", "a virtual product's stock is its uploaded codes")
    if data.cash_price is not None and data.currency not in (None, settings.currency):
        raise _invalid(
            "currency",
            f"a cash part is in the tenant's currency, {settings.currency}",
            code="currency_mismatch",
        )
    if (data.per_period_limit is None) != (data.limit_period is None):
        raise _invalid("limit_period", "give per_period_limit and limit_period together")
    if data.kind == "coupon" and data.coupon_valid_days is None:
        raise _invalid("coupon_valid_days", "required for coupons")
    await _check_tiers(session, data.tiers)
    fields = msgspec.structs.asdict(data)
    fields["coupon_value"] = Decimal(data.coupon_value) if data.coupon_value else None
    fields["cash_price"] = Decimal(data.cash_price) if data.cash_price else None
    if data.cash_price or data.coupon_value:
        fields["currency"] = data.currency or settings.currency
    if data.kind == "virtual":
        fields["stock"] = 0
    row = models.Product(id=new_id("prod"), **fields)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return _product(row)


async def _get(session: AsyncSession, product_id: str) -> models.Product:
    row = await session.get(models.Product, product_id) if is_id("prod", product_id) else None
    if row is None:
        raise NotFound("No such product.")
    return row


async def get_product(session: AsyncSession, product_id: str) -> schemas.Product:
    return _product(await _get(session, product_id))


async def update_product(
    session: AsyncSession, product_id: str, data: schemas.ProductUpdate
) -> schemas.Product:
    row = await _get(session, product_id)
    if row.kind == "virtual" and data.stock is not msgspec.UNSET:
        raise _invalid("stock", "a virtual product's stock is its uploaded codes")
    if isinstance(data.tiers, list):
        await _check_tiers(session, data.tiers)
    for field, value in msgspec.structs.asdict(data).items():
        if value is not msgspec.UNSET:
            setattr(row, field, value)
    await session.flush()
    await session.refresh(row)
    return _product(row)


async def list_products(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: str | None,
    category: str | None,
    kind: str | None,
    min_points: int | None,
    max_points: int | None,
    available_only: bool,
) -> Page[schemas.Product]:
    query = select(models.Product)
    if category is not None:
        query = query.where(models.Product.category == category)
    if kind is not None:
        query = query.where(models.Product.kind == kind)
    if min_points is not None:
        query = query.where(models.Product.points_price >= min_points)
    if max_points is not None:
        query = query.where(models.Product.points_price <= max_points)
    if available_only:
        now = datetime.now(UTC)
        query = query.where(
            models.Product.status == "active",
            (models.Product.stock.is_(None)) | (models.Product.stock > 0),
            (models.Product.available_from.is_(None)) | (models.Product.available_from <= now),
            (models.Product.available_until.is_(None)) | (models.Product.available_until > now),
        )
    rows = (
        await session.scalars(newest_first(query, models.Product.id, limit, starting_after))
    ).all()
    return to_page(rows, limit, _product, lambda p: p.id)


async def add_codes(
    session: AsyncSession, product_id: str, data: schemas.CodesIn
) -> schemas.CodesAdded:
    """Add codes to a virtual product's pool; a code it already has is skipped."""
    row = await _get(session, product_id)
    if row.kind != "virtual":
        raise _invalid("product_id", "codes belong to virtual products", code="not_virtual")
    added = (
        await session.scalars(
            pg_insert(models.VirtualCode)
            .values(
                [{"product_id": product_id, "code": code} for code in dict.fromkeys(data.codes)]
            )
            .on_conflict_do_nothing()
            .returning(models.VirtualCode.id)
        )
    ).all()
    stock = await session.scalar(
        update(models.Product)
        .where(models.Product.id == product_id)
        .values(stock=models.Product.stock + len(added))
        .returning(models.Product.stock)
    )
    return schemas.CodesAdded(product_id=product_id, added=len(added), stock=int(stock or 0))


def _category(row: models.Category) -> schemas.Category:
    return schemas.Category(
        id=row.id,
        name=row.name,
        parent_id=row.parent_id,
        position=row.position,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _get_category(session: AsyncSession, category_id: str) -> models.Category:
    row = await session.get(models.Category, category_id) if is_id("cat", category_id) else None
    if row is None:
        raise NotFound("No such category.")
    return row


async def create_category(session: AsyncSession, data: schemas.CategoryCreate) -> schemas.Category:
    if data.parent_id is not None and await session.get(models.Category, data.parent_id) is None:
        raise _invalid("parent_id", "no such category", code="unknown_category")
    row = models.Category(id=new_id("cat"), **msgspec.structs.asdict(data))
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return _category(row)


async def get_category(session: AsyncSession, category_id: str) -> schemas.Category:
    return _category(await _get_category(session, category_id))


async def update_category(
    session: AsyncSession, category_id: str, data: schemas.CategoryUpdate
) -> schemas.Category:
    row = await _get_category(session, category_id)
    if isinstance(data.parent_id, str):
        parent: str | None = data.parent_id
        while parent is not None:  # a category may not sit under itself
            if parent == category_id:
                raise _invalid("parent_id", "a category cannot sit under itself")
            parent = (await _get_category(session, parent)).parent_id
    for field, value in msgspec.structs.asdict(data).items():
        if value is not msgspec.UNSET:
            setattr(row, field, value)
    await session.flush()
    await session.refresh(row)
    return _category(row)


async def list_categories(
    session: AsyncSession, *, limit: int, starting_after: str | None
) -> Page[schemas.Category]:
    rows = (
        await session.scalars(
            newest_first(select(models.Category), models.Category.id, limit, starting_after)
        )
    ).all()
    return to_page(rows, limit, _category, lambda c: c.id)


# --- coupons ------------------------------------------------------------------------------


def _coupon(row: asyncpg.Record, now: datetime) -> schemas.CouponOut:
    status: Literal["valid", "redeemed", "expired", "void"] = (
        "redeemed"
        if row["redeemed_at"]
        else "void"
        if row["voided_at"]
        else "expired"
        if row["expires_at"] <= now
        else "valid"
    )
    return schemas.CouponOut(
        code=row["code"],
        status=status,
        product_id=row["product_id"],
        member_id=row["member_id"],
        value=str(row["value"]) if row["value"] is not None else None,
        currency=row["currency"],
        expires_at=row["expires_at"],
        redeemed_at=row["redeemed_at"],
    )


async def get_coupon(pool: asyncpg.Pool, schema: str, code: str) -> schemas.CouponOut:
    s = quoted_schema(schema)
    row = await pool.fetchrow(f"SELECT * FROM {s}.coupons WHERE code = $1", code.upper())
    if row is None:
        raise NotFound("No such coupon.")
    return _coupon(row, datetime.now(UTC))


async def redeem_coupon(
    pool: asyncpg.Pool, schema: str, code: str, data: schemas.CouponRedeem
) -> schemas.CouponOut:
    """Single use: one conditional UPDATE, so of concurrent redemptions exactly one wins."""
    s = quoted_schema(schema)
    row = await pool.fetchrow(
        f"UPDATE {s}.coupons SET redeemed_at = now(), redeemed_reference = $2"
        " WHERE code = $1 AND redeemed_at IS NULL AND voided_at IS NULL AND expires_at > now()"
        " RETURNING *",
        code.upper(),
        data.reference,
    )
    if row is not None:
        return _coupon(row, datetime.now(UTC))
    current = await get_coupon(pool, schema, code)  # 404 when unknown
    raise Conflict(f"The coupon is {current.status}.", code=f"coupon_{current.status}")
