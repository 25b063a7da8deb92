"""The catalog (categories, products, virtual codes) and coupon checks at the merchant's
checkout. Orders live in `orders.py`."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, cast

import asyncpg
import msgspec
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import Conflict, FieldError, InvalidInput, NotFound
from pointsmall.ids import is_id, new_id
from pointsmall.mall import models, money, schemas
from pointsmall.pagination import newest_first, to_page
from pointsmall.rules.models import Tier
from pointsmall.schemas import Page
from pointsmall.tenancy.models import TenantSettings
from pointsmall_tenants import quoted_schema


def _product(row: models.Product) -> schemas.Product:
    return schemas.Product(
        id=row.id,
        name=row.name,
        kind=cast(schemas.ProductKind, row.kind),
        points_price=row.points_price,
        cash_price=money.render_or_none(row.cash_price, row.currency),
        currency=row.currency,
        description=row.description,
        category=row.category,
        stock=row.stock,
        per_member_limit=row.per_member_limit,
        per_period_limit=row.per_period_limit,
        limit_period=cast(schemas.LimitPeriod | None, row.limit_period),
        tiers=row.tiers,
        available_from=row.available_from,
        available_until=row.available_until,
        images=row.images,
        status=cast(schemas.ProductStatus, row.status),
        coupon_value=money.render_or_none(row.coupon_value, row.currency),
        coupon_valid_days=row.coupon_valid_days,
        created_at=row.created_at,
        updated_at=row.updated_at,
        object="product",
    )


def _invalid(field: str, message: str, code: str = "validation_error") -> InvalidInput:
    return InvalidInput(message, code=code, errors=[FieldError(field=field, message=message)])


def _conflict(field: str, message: str, code: str) -> Conflict:
    """A body that is valid on its own but refused given the tenant's data (the product's
    kind, its limits, the tenant's currency): 409. (One naming a category or tier that does
    not exist is 404.)"""
    return Conflict(message, code=code, errors=[FieldError(field=field, message=message)])


async def _check_tiers(session: AsyncSession, tiers: list[str] | None) -> None:
    """A product for a tier that does not exist could never be ordered: refuse it (404)."""
    if not tiers:
        return
    known = set((await session.scalars(select(Tier.key))).all())
    unknown = [key for key in dict.fromkeys(tiers) if key not in known]
    if unknown:
        message = f"no such tier: {', '.join(unknown)}"
        raise NotFound(
            f"Unknown tiers: {', '.join(unknown)}; the tenant's tiers are:"
            f" {', '.join(sorted(known)) or 'none'}.",
            code="unknown_tier",
            errors=[FieldError(field="tiers", message=message)],
        )


async def _check_category(session: AsyncSession, category: str | None, field: str) -> None:
    """A body naming a category that does not exist is 404, as an order naming an unknown
    member or product is."""
    if category is not None and await session.get(models.Category, category) is None:
        message = f"no such category: {category}"
        raise NotFound(
            message, code="unknown_category", errors=[FieldError(field=field, message=message)]
        )


def _check_create_rules(data: schemas.ProductCreate) -> None:
    """What the fields cannot say each on its own (schemas.PRODUCT_CREATE_RULES, which puts
    the same rules in the document)."""
    if data.kind == "virtual" and data.stock is not None:
        raise _invalid("stock", "a virtual product's stock is its uploaded codes")
    if data.kind == "coupon" and data.coupon_valid_days is None:
        raise _invalid("coupon_valid_days", "required for coupons")
    if data.kind != "coupon":
        for field in ("coupon_value", "coupon_valid_days"):
            if getattr(data, field) is not None:
                raise _invalid(field, "only coupons have it")
    if data.per_period_limit is not None and data.limit_period is None:
        raise _invalid("limit_period", "give per_period_limit and limit_period together")
    if data.limit_period is not None and data.per_period_limit is None:
        raise _invalid("per_period_limit", "give per_period_limit and limit_period together")


def _check_money(row: models.Product, tenant_currency: str, changed: set[str]) -> None:
    """A cash part is in the tenant's currency; no amount has digits its currency lacks."""
    if not changed & {"cash_price", "coupon_value", "currency"}:
        return
    if row.cash_price is not None and row.currency != tenant_currency:
        raise _conflict(
            "currency",
            f"a cash part is in the tenant's currency, {tenant_currency}",
            "currency_mismatch",
        )
    currency = row.currency or tenant_currency
    for field in ("cash_price", "coupon_value"):
        amount: Decimal | None = getattr(row, field)
        if amount is not None and not money.fits(amount, currency):
            digits = money.minor_digits(currency)
            raise _conflict(
                field,
                f"{currency} has {digits} minor-unit digit{'s' if digits != 1 else ''}:"
                f" {money.render(amount, currency)} would be rounded",
                "amount_precision",
            )


def _apply(row: models.Product, fields: dict[str, Any], tenant_currency: str) -> None:
    for field, value in fields.items():
        if field in ("cash_price", "coupon_value") and value is not None:
            value = Decimal(value)
        elif field in ("available_from", "available_until") and value is not None:
            value = money.utc(value)
        setattr(row, field, value)
    if (row.cash_price is not None or row.coupon_value is not None) and row.currency is None:
        row.currency = tenant_currency  # money without a currency is in the tenant's


async def create_product(session: AsyncSession, data: schemas.ProductCreate) -> schemas.Product:
    _check_create_rules(data)
    settings = await session.get_one(TenantSettings, 1)
    await _check_category(session, data.category, "category")
    await _check_tiers(session, data.tiers)
    fields = msgspec.structs.asdict(data)
    if data.kind == "virtual":
        fields["stock"] = 0
    row = models.Product(id=new_id("prod"))
    _apply(row, fields, settings.currency)
    _check_money(row, settings.currency, set(fields))
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
    """Every field POST takes but `kind`, checked against the product as it will be."""
    row = await _get(session, product_id)
    fields = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if row.kind == "virtual" and "stock" in fields:
        raise _conflict("stock", "a virtual product's stock is its uploaded codes", "kind_mismatch")
    if row.kind != "coupon":
        for field in ("coupon_value", "coupon_valid_days"):
            if fields.get(field) is not None:
                raise _conflict(field, f"only coupons have it; this is {row.kind}", "kind_mismatch")
    if "category" in fields:
        await _check_category(session, fields["category"], "category")
    if "tiers" in fields:
        await _check_tiers(session, fields["tiers"])
    settings = await session.get_one(TenantSettings, 1)
    _apply(row, fields, settings.currency)
    if (row.per_period_limit is None) != (row.limit_period is None):
        missing = "limit_period" if row.limit_period is None else "per_period_limit"
        raise _conflict(
            missing,
            "per_period_limit and limit_period go together",
            "period_limit_incomplete",
        )
    _check_money(row, settings.currency, set(fields))
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
        raise _conflict("product_id", "codes belong to virtual products", "not_virtual")
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
        object="category",
    )


async def _get_category(session: AsyncSession, category_id: str) -> models.Category:
    row = await session.get(models.Category, category_id) if is_id("cat", category_id) else None
    if row is None:
        raise NotFound("No such category.")
    return row


async def create_category(session: AsyncSession, data: schemas.CategoryCreate) -> schemas.Category:
    await _check_category(session, data.parent_id, "parent_id")
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
        await _check_category(session, data.parent_id, "parent_id")
        parent: str | None = data.parent_id
        while parent is not None:  # a category may not sit under itself
            if parent == category_id:
                raise _conflict("parent_id", "a category cannot sit under itself", "category_cycle")
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
        value=money.render_or_none(row["value"], row["currency"]),
        currency=row["currency"],
        expires_at=row["expires_at"],
        redeemed_at=row["redeemed_at"],
        object="coupon",
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
