"""Catalog CRUD (SQLAlchemy) and redemption orders (one transaction on the driver pool:
member lock, checks, stock reservation and the ledger debit succeed or fail together)."""

import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import ApiError, Conflict, FieldError, InvalidInput, NotFound
from pointsmall.idempotency.middleware import Idempotency
from pointsmall.ids import is_id, new_id
from pointsmall.ledger import services as ledger
from pointsmall.mall import models, schemas
from pointsmall.pagination import newest_first, to_page
from pointsmall.rules.engine import windows
from pointsmall.schemas import Page
from pointsmall.tenancy.zone import tenant_zone
from pointsmall_tenants import quoted_schema


def _product(row: models.Product) -> schemas.Product:
    return schemas.Product(
        id=row.id,
        name=row.name,
        kind=row.kind,
        points_price=row.points_price,
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


async def create_product(session: AsyncSession, data: schemas.ProductCreate) -> schemas.Product:
    if (data.per_period_limit is None) != (data.limit_period is None):
        raise InvalidInput(
            errors=[
                FieldError(
                    field="limit_period", message="give per_period_limit and limit_period together"
                )
            ]
        )
    if data.kind == "coupon" and data.coupon_valid_days is None:
        raise InvalidInput(
            errors=[FieldError(field="coupon_valid_days", message="required for coupons")]
        )
    fields = msgspec.structs.asdict(data)
    fields["coupon_value"] = Decimal(data.coupon_value) if data.coupon_value else None
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


# --- orders ------------------------------------------------------------------------------


def _refuse(code: str, detail: str, status: int = 409) -> ApiError:
    return ApiError(detail, status=status, code=code, title="Order refused")


_order = msgspec.json.Decoder(schemas.Order)


async def place_order(
    pool: asyncpg.Pool,
    schema: str,
    data: schemas.OrderCreate,
    *,
    granted_by: str,
    idem: Idempotency,
) -> tuple[schemas.Order, bool]:
    s = quoted_schema(schema)
    async with pool.acquire() as conn, conn.transaction():
        if idem.key is not None:
            replay = await conn.fetchval(
                f"SELECT {s}.ledger_claim_key($1, $2)::text", idem.key, idem.fingerprint
            )
            if replay is not None:
                return _order.decode(msgspec.json.encode(msgspec.json.decode(replay)["body"])), True
        # One member's orders queue here, so limits and balances are judged one at a time.
        member = await conn.fetchrow(
            f"SELECT m.id, m.status, mt.tier_key FROM {s}.members m"
            f" LEFT JOIN {s}.member_tiers mt ON mt.member_id = m.id WHERE m.id = $1 FOR UPDATE OF m",
            data.member_id,
        )
        if member is None:
            raise NotFound("No such member.")
        zone = await tenant_zone(conn, s)
        now = datetime.now(UTC)
        order_id = new_id("ord")
        lines: list[schemas.OrderLine] = []
        quantities: dict[str, int] = {}
        for line in data.lines:
            quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
        for product_id in sorted(quantities):  # a fixed order: no deadlock between orders
            quantity = quantities[product_id]
            product = await conn.fetchrow(f"SELECT * FROM {s}.products WHERE id = $1", product_id)
            if product is None or product["status"] != "active":
                raise NotFound(f"No such product: {product_id}.")
            await _check_product(conn, s, product, member, quantity, now, zone)
            reserved = await conn.fetchval(
                f"UPDATE {s}.products SET stock = stock - $2 WHERE id = $1 AND stock IS NOT NULL AND stock >= $2"
                " RETURNING stock",
                product_id,
                quantity,
            )
            if reserved is None and product["stock"] is not None:
                raise _refuse("out_of_stock", f"Not enough stock of {product_id}.")
            lines.append(
                schemas.OrderLine(product_id, quantity, product["points_price"] * quantity)
            )
        total = sum(line.points for line in lines)
        offered = (data.payment or {}).get("points", total)
        if offered != total or set(data.payment or {}) - {"points"}:
            raise InvalidInput(
                errors=[
                    FieldError(
                        field="payment",
                        message=f"pay exactly {total} points (cash parts are not offered yet)",
                    )
                ]
            )
        await conn.execute(
            f"INSERT INTO {s}.orders (id, member_id, status, points, shipping_address) VALUES ($1, $2, 'confirmed', $3, $4::jsonb)",
            order_id,
            member["id"],
            total,
            msgspec.json.encode(data.shipping_address).decode() if data.shipping_address else None,
        )
        await conn.executemany(
            f"INSERT INTO {s}.order_lines (order_id, product_id, quantity, points) VALUES ($1, $2, $3, $4)",
            [(order_id, line.product_id, line.quantity, line.points) for line in lines],
        )
        try:
            spent = await conn.fetchval(
                f"SELECT {s}.ledger_debit('spend', $1, 'points', $2, $3, $4, $5, NULL, NULL, NULL)::text",
                member["id"],
                total,
                f"order {order_id}",
                order_id,
                granted_by,
            )
        except asyncpg.exceptions.RaiseError as exc:
            raise ledger.api_error(exc) from None
        transaction_id = ledger.decode_written(spent).body.id
        await conn.execute(
            f"UPDATE {s}.orders SET spend_transaction = $2 WHERE id = $1", order_id, transaction_id
        )
        created = await conn.fetchval(f"SELECT created_at FROM {s}.orders WHERE id = $1", order_id)
        coupons = await _issue_coupons(conn, s, order_id, member["id"], lines)
        out = schemas.Order(
            order_id, member["id"], "confirmed", total, lines, transaction_id, created, coupons
        )
        body = msgspec.json.encode(out).decode()
        await conn.execute(f"SELECT {s}.ledger_event('order.created', $1::jsonb)", body)
        await conn.execute(f"SELECT {s}.ledger_store_key($1, 201, $2::jsonb)", idem.key, body)
    return out, False


_COUPON_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U


def new_coupon_code() -> str:
    """20 characters of 5 bits each: 100 bits from the OS's CSPRNG."""
    return "".join(secrets.choice(_COUPON_ALPHABET) for _ in range(20))


async def _issue_coupons(
    conn: Any, s: str, order_id: str, member_id: str, lines: list[schemas.OrderLine]
) -> list[str]:
    codes: list[str] = []
    for line in lines:
        product = await conn.fetchrow(
            f"SELECT kind, coupon_value, currency, coupon_valid_days FROM {s}.products WHERE id = $1",
            line.product_id,
        )
        if product["kind"] != "coupon":
            continue
        for _ in range(line.quantity):
            code = new_coupon_code()
            await conn.execute(
                f"INSERT INTO {s}.coupons (code, order_id, product_id, member_id, value, currency, expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7))",
                code,
                order_id,
                line.product_id,
                member_id,
                product["coupon_value"],
                product["currency"],
                product["coupon_valid_days"],
            )
            codes.append(code)
    return codes


def _coupon(row: asyncpg.Record, now: datetime) -> schemas.CouponOut:
    status: Literal["valid", "redeemed", "expired"] = (
        "redeemed" if row["redeemed_at"] else "expired" if row["expires_at"] <= now else "valid"
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
        " WHERE code = $1 AND redeemed_at IS NULL AND expires_at > now() RETURNING *",
        code.upper(),
        data.reference,
    )
    if row is not None:
        return _coupon(row, datetime.now(UTC))
    current = await get_coupon(pool, schema, code)  # 404 when unknown
    raise Conflict(f"The coupon is {current.status}.", code=f"coupon_{current.status}")


async def _check_product(
    conn: Any,
    s: str,
    product: asyncpg.Record,
    member: asyncpg.Record,
    quantity: int,
    now: datetime,
    zone: ZoneInfo,
) -> None:
    if (product["available_from"] and now < product["available_from"]) or (
        product["available_until"] and now >= product["available_until"]
    ):
        raise _refuse("not_available", "The product is not available now.")
    if product["tiers"] is not None and member["tier_key"] not in product["tiers"]:
        raise _refuse("tier_restricted", "The product is for other tiers.", status=403)
    counted = f"SELECT coalesce(sum(l.quantity), 0) FROM {s}.order_lines l JOIN {s}.orders o ON o.id = l.order_id WHERE o.member_id = $1 AND l.product_id = $2 AND o.status NOT IN ('cancelled', 'refunded')"
    if product["per_member_limit"] is not None:
        had = await conn.fetchval(counted, member["id"], product["id"])
        if had + quantity > product["per_member_limit"]:
            raise _refuse("limit_exceeded", f"At most {product['per_member_limit']} per member.")
    if product["per_period_limit"] is not None:
        span = getattr(windows(now, zone), product["limit_period"])
        had = await conn.fetchval(
            counted + " AND o.created_at >= $3 AND o.created_at < $4",
            member["id"],
            product["id"],
            *span,
        )
        if had + quantity > product["per_period_limit"]:
            raise _refuse(
                "period_limit_exceeded",
                f"At most {product['per_period_limit']} per {product['limit_period']}.",
            )


async def _load_order(conn: Any, s: str, order_id: str) -> asyncpg.Record:
    row: asyncpg.Record | None = (
        await conn.fetchrow(f"SELECT * FROM {s}.orders WHERE id = $1 FOR UPDATE", order_id)
        if is_id("ord", order_id)
        else None
    )
    if row is None:
        raise NotFound("No such order.")
    return row


async def _out(conn: Any, s: str, row: asyncpg.Record) -> schemas.Order:
    coupons = await conn.fetch(
        f"SELECT code FROM {s}.coupons WHERE order_id = $1 ORDER BY code", row["id"]
    )
    lines = await conn.fetch(
        f"SELECT product_id, quantity, points FROM {s}.order_lines WHERE order_id = $1 ORDER BY product_id",
        row["id"],
    )
    return schemas.Order(
        row["id"],
        row["member_id"],
        row["status"],
        row["points"],
        [schemas.OrderLine(r["product_id"], r["quantity"], r["points"]) for r in lines],
        row["spend_transaction"],
        row["created_at"],
        [c["code"] for c in coupons],
    )


async def get_order(pool: asyncpg.Pool, schema: str, order_id: str) -> schemas.Order:
    s = quoted_schema(schema)
    async with pool.acquire() as conn, conn.transaction():
        return await _out(conn, s, await _load_order(conn, s, order_id))


async def transition(
    pool: asyncpg.Pool, schema: str, order_id: str, action: str, *, granted_by: str
) -> schemas.Order:
    """`cancel` (confirmed or pending → cancelled: points and stock come back) or
    `fulfill` (confirmed → fulfilled). Anything else is 409 invalid_order_state."""
    s = quoted_schema(schema)
    allowed = {"cancel": ("pending_payment", "confirmed"), "fulfill": ("confirmed",)}[action]
    async with pool.acquire() as conn, conn.transaction():
        row = await _load_order(conn, s, order_id)
        if row["status"] not in allowed:
            raise Conflict(
                f"Cannot {action} an order that is {row['status']}.", code="invalid_order_state"
            )
        if action == "cancel":
            if row["spend_transaction"]:
                try:
                    await conn.fetchval(
                        f"SELECT {s}.ledger_reverse($1, $2, $3, NULL, NULL, NULL)",
                        row["spend_transaction"],
                        f"order {order_id} cancelled",
                        granted_by,
                    )
                except asyncpg.exceptions.RaiseError as exc:
                    raise ledger.api_error(exc) from None
            await conn.execute(
                f"UPDATE {s}.products p SET stock = p.stock + l.quantity FROM {s}.order_lines l"
                " WHERE l.order_id = $1 AND p.id = l.product_id AND p.stock IS NOT NULL",
                order_id,
            )
        status = "cancelled" if action == "cancel" else "fulfilled"
        updated: asyncpg.Record | None = await conn.fetchrow(
            f"UPDATE {s}.orders SET status = $2, updated_at = now() WHERE id = $1 RETURNING *",
            order_id,
            status,
        )
        assert updated is not None  # the row is locked above
        out = await _out(conn, s, updated)
        await conn.execute(
            f"SELECT {s}.ledger_event($1, $2::jsonb)",
            f"order.{status}",
            msgspec.json.encode(out).decode(),
        )
    return out
