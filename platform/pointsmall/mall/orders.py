"""Redemption orders. Each change of an order is one transaction on the driver pool: the
member's (or the order's) row lock, the checks, stock, the ledger call and the outbox event
succeed or fail together. Payment providers are called outside transactions, with a key
that makes a retry safe."""

import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from pointsmall.errors import ApiError, Conflict, FieldError, InvalidInput, NotFound
from pointsmall.idempotency.middleware import Idempotency
from pointsmall.ids import is_id, new_id
from pointsmall.ledger import services as ledger
from pointsmall.mall import schemas
from pointsmall.mall.money import Split, money
from pointsmall.payments.contracts import PaymentIntent, PaymentRequest, RefundRequest
from pointsmall.plugins import call_first, payment_providers
from pointsmall.rules.engine import windows
from pointsmall_tenants import quoted_schema

Conn = Any  # an asyncpg connection inside a transaction


def _refuse(code: str, detail: str, status: int = 409) -> ApiError:
    return ApiError(detail, status=status, code=code, title="Order refused")


def _split_error(detail: str, code: str = "invalid_split") -> InvalidInput:
    return InvalidInput(
        detail, code=code, errors=[FieldError(field="payment.points", message=detail)]
    )


class ProviderFailed(ApiError):
    status = 502
    code = "payment_provider_error"
    title = "The payment provider failed"


async def place_order(
    pool: asyncpg.Pool,
    schema: str,
    tenant_id: str,
    data: schemas.OrderCreate,
    *,
    granted_by: str,
    idem: Idempotency,
    payment_timeout: timedelta,
) -> tuple[schemas.Order, bool]:
    s = quoted_schema(schema)
    pay = data.payment or schemas.PaymentIn()
    if pay.provider not in payment_providers():
        raise InvalidInput(
            f"No payment provider {pay.provider!r} is installed.",
            code="unknown_payment_provider",
            errors=[FieldError(field="payment.provider", message="not installed")],
        )
    async with pool.acquire() as conn, conn.transaction():
        if idem.key is not None:
            replay = await conn.fetchval(
                f"SELECT {s}.ledger_claim_key($1, $2)::text", idem.key, idem.fingerprint
            )
            if replay is not None:
                order_id = msgspec.json.decode(replay)["body"]["id"]
                return await _out(conn, s, await _load(conn, s, order_id, lock=False)), True
        order = await _insert_order(conn, s, data, pay, granted_by, payment_timeout)
        body = msgspec.json.encode(order).decode()
        await conn.execute(f"SELECT {s}.ledger_event('order.created', $1::jsonb)", body)
        await conn.execute(f"SELECT {s}.ledger_store_key($1, 201, $2::jsonb)", idem.key, body)
    if order.status != "pending_payment":
        return order, False
    # The provider is asked after the commit, holding no connection: the order, its points
    # and its stock are already safe, and a provider that fails cancels the order again.
    assert order.cash is not None and order.currency is not None and order.payment
    assert order.payment.expires_at is not None
    request = PaymentRequest(
        tenant_id=tenant_id,
        order_id=order.id,
        amount=order.cash,
        currency=order.currency,
        description=f"Order {order.id}",
        return_url=pay.return_url,
        idempotency_key=f"{tenant_id}:{order.id}:pay",
        expires_at=order.payment.expires_at.isoformat(),
    )
    try:
        intent: PaymentIntent | None = await call_first(
            "pointsmall_create_payment", provider=pay.provider, request=request
        )
        if intent is None:
            raise RuntimeError("the provider gave no payment")
    except Exception as exc:  # whatever the provider's failure, the order must not stay
        async with pool.acquire() as conn:
            await _cancel_unpaid(conn, s, order.id, "payment_failed", granted_by)
        raise ProviderFailed(f"{pay.provider}: {exc}") from exc
    async with pool.acquire() as conn:
        await conn.execute(
            f"UPDATE {s}.orders SET payment = payment || $2::jsonb WHERE id = $1",
            order.id,
            msgspec.json.encode(intent).decode(),
        )
        return await _out(conn, s, await _load(conn, s, order.id, lock=False)), False


async def _insert_order(
    conn: Conn,
    s: str,
    data: schemas.OrderCreate,
    pay: schemas.PaymentIn,
    granted_by: str,
    payment_timeout: timedelta,
) -> schemas.Order:
    # One member's orders queue here, so limits and balances are judged one at a time.
    member = await conn.fetchrow(
        f"SELECT m.id, mt.tier_key FROM {s}.members m"
        f" LEFT JOIN {s}.member_tiers mt ON mt.member_id = m.id WHERE m.id = $1 FOR UPDATE OF m",
        data.member_id,
    )
    if member is None:
        raise NotFound("No such member.")
    settings = await conn.fetchrow(
        f"SELECT timezone, currency, point_value, max_points_share FROM {s}.settings WHERE id = 1"
    )
    currency: str = settings["currency"]
    zone = ZoneInfo(settings["timezone"])
    now = datetime.now(UTC)
    order_id = new_id("ord")
    quantities: dict[str, int] = {}
    for line in data.lines:
        quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
    lines: list[tuple[asyncpg.Record, int]] = []
    for product_id in sorted(quantities):  # a fixed order: no deadlock between orders
        quantity = quantities[product_id]
        product = await conn.fetchrow(f"SELECT * FROM {s}.products WHERE id = $1", product_id)
        if product is None or product["status"] != "active":
            raise NotFound(f"No such product: {product_id}.")
        await _check_product(conn, s, product, member, quantity, now, zone)
        reserved = await conn.fetchval(
            f"UPDATE {s}.products SET stock = stock - $2"
            " WHERE id = $1 AND stock IS NOT NULL AND stock >= $2 RETURNING stock",
            product_id,
            quantity,
        )
        if reserved is None and product["stock"] is not None:
            raise _refuse("out_of_stock", f"Not enough stock of {product_id}.")
        lines.append((product, quantity))
    points_total = sum(p["points_price"] * q for p, q in lines)
    cash_total = sum(
        (Fraction(p["cash_price"]) * q for p, q in lines if p["cash_price"]), Fraction()
    )
    split = Split(
        points_total, cash_total, currency, settings["point_value"], settings["max_points_share"]
    )
    points = split.max_points if pay.points is None else pay.points
    if points > points_total:
        raise _split_error(f"The order costs at most {points_total} points.")
    if points > split.max_points or points < 0:
        raise _split_error(
            f"At most {max(split.max_points, 0)} of the {points_total} points may be paid in"
            " points (the tenant's largest points share).",
            code="points_share_exceeded",
        )
    if not split.exact(points):
        below, above = split.nearest(points)
        raise _split_error(
            f"{points} points do not convert into whole {currency} minor units; pay {below}"
            f" or {above} points.",
            code="inexact_split",
        )
    cash = split.cash_for(points)
    shown_cash = money(cash, currency) if cash else None
    if pay.cash is not None and (
        pay.cash.currency != currency or Fraction(Decimal(pay.cash.amount)) != cash
    ):
        raise InvalidInput(
            f"The cash part is {shown_cash or '0'} {currency}.",
            code="cash_mismatch",
            errors=[FieldError(field="payment.cash", message=f"expected {shown_cash} {currency}")],
        )
    pending = cash > 0
    status = "pending_payment" if pending else "confirmed"
    payment = (
        {
            "provider": pay.provider,
            "status": "pending",
            "expires_at": (now + payment_timeout).isoformat(),
        }
        if pending
        else None
    )
    await conn.execute(
        f"INSERT INTO {s}.orders (id, member_id, status, points, shipping_address, cash, currency,"
        " payment, payment_expires_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8::jsonb, $9)",
        order_id,
        member["id"],
        status,
        points,
        msgspec.json.encode(data.shipping_address).decode() if data.shipping_address else None,
        Decimal(shown_cash) if shown_cash else None,
        currency if pending else None,
        msgspec.json.encode(payment).decode() if payment else None,
        now + payment_timeout if pending else None,
    )
    await conn.executemany(
        f"INSERT INTO {s}.order_lines (order_id, product_id, quantity, points, cash)"
        " VALUES ($1, $2, $3, $4, $5)",
        [
            (
                order_id,
                p["id"],
                q,
                p["points_price"] * q,
                p["cash_price"] * q if p["cash_price"] else None,
            )
            for p, q in lines
        ],
    )
    for product, quantity in lines:
        if product["kind"] == "virtual":
            await _reserve_codes(conn, s, order_id, product["id"], quantity)
    if points:
        try:
            spent = await conn.fetchval(
                f"SELECT {s}.ledger_debit('spend', $1, 'points', $2, $3, $4, $5, NULL, NULL, NULL)::text",
                member["id"],
                points,
                f"order {order_id}",
                order_id,
                granted_by,
            )
        except asyncpg.exceptions.RaiseError as exc:
            raise ledger.api_error(exc) from None
        await conn.execute(
            f"UPDATE {s}.orders SET spend_transaction = $2 WHERE id = $1",
            order_id,
            ledger.decode_written(spent).body.id,
        )
    if not pending:
        await _issue_coupons(conn, s, order_id)
    return await _out(conn, s, await _load(conn, s, order_id, lock=False))


async def _reserve_codes(conn: Conn, s: str, order_id: str, product_id: str, quantity: int) -> None:
    """Set aside one code per unit (shown once the order is confirmed)."""
    taken = await conn.fetchval(
        f"WITH picked AS (SELECT id FROM {s}.virtual_codes WHERE product_id = $2 AND order_id IS NULL"
        " ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)"
        f" UPDATE {s}.virtual_codes v SET order_id = $1 FROM picked WHERE v.id = picked.id"
        " RETURNING 1",
        order_id,
        product_id,
        quantity,
    )
    count = await conn.fetchval(
        f"SELECT count(*) FROM {s}.virtual_codes WHERE order_id = $1 AND product_id = $2",
        order_id,
        product_id,
    )
    if taken is None or count < quantity:
        raise _refuse("out_of_stock", f"Not enough codes left for {product_id}.")


_COUPON_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U


def new_coupon_code() -> str:
    """20 characters of 5 bits each: 100 bits from the OS's CSPRNG."""
    return "".join(secrets.choice(_COUPON_ALPHABET) for _ in range(20))


async def _issue_coupons(conn: Conn, s: str, order_id: str) -> None:
    rows = await conn.fetch(
        f"SELECT l.product_id, l.quantity, p.coupon_value, p.currency, p.coupon_valid_days, o.member_id"
        f" FROM {s}.order_lines l JOIN {s}.products p ON p.id = l.product_id"
        f" JOIN {s}.orders o ON o.id = l.order_id WHERE l.order_id = $1 AND p.kind = 'coupon'",
        order_id,
    )
    await conn.executemany(
        f"INSERT INTO {s}.coupons (code, order_id, product_id, member_id, value, currency, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7))",
        [
            (
                new_coupon_code(),
                order_id,
                row["product_id"],
                row["member_id"],
                row["coupon_value"],
                row["currency"],
                row["coupon_valid_days"],
            )
            for row in rows
            for _ in range(row["quantity"])
        ],
    )


async def _check_product(
    conn: Conn,
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
    counted = (
        f"SELECT coalesce(sum(l.quantity), 0) FROM {s}.order_lines l JOIN {s}.orders o"
        " ON o.id = l.order_id WHERE o.member_id = $1 AND l.product_id = $2"
        " AND o.status NOT IN ('cancelled', 'refunded')"
    )
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


async def _load(conn: Conn, s: str, order_id: str, *, lock: bool = True) -> asyncpg.Record:
    row: asyncpg.Record | None = (
        await conn.fetchrow(
            f"SELECT * FROM {s}.orders WHERE id = $1" + (" FOR UPDATE" if lock else ""), order_id
        )
        if is_id("ord", order_id)
        else None
    )
    if row is None:
        raise NotFound("No such order.")
    return row


async def _out(conn: Conn, s: str, row: asyncpg.Record) -> schemas.Order:
    lines = await conn.fetch(
        f"SELECT product_id, quantity, points, cash FROM {s}.order_lines WHERE order_id = $1"
        " ORDER BY product_id",
        row["id"],
    )
    coupons = await conn.fetch(
        f"SELECT code FROM {s}.coupons WHERE order_id = $1 ORDER BY code", row["id"]
    )
    shown = row["status"] in ("confirmed", "fulfilled")
    codes = (
        await conn.fetch(
            f"SELECT code FROM {s}.virtual_codes WHERE order_id = $1 ORDER BY id", row["id"]
        )
        if shown
        else []
    )
    currency = row["currency"]
    payment = (
        msgspec.json.decode(row["payment"], type=schemas.PaymentOut) if row["payment"] else None
    )
    return schemas.Order(
        id=row["id"],
        member_id=row["member_id"],
        status=row["status"],
        points=row["points"],
        lines=[
            schemas.OrderLine(
                r["product_id"],
                r["quantity"],
                r["points"],
                money(Fraction(r["cash"]), currency or "XXX") if r["cash"] and currency else None,
            )
            for r in lines
        ],
        spend_transaction=row["spend_transaction"],
        created_at=row["created_at"],
        coupons=[c["code"] for c in coupons],
        codes=[c["code"] for c in codes],
        cash=money(Fraction(row["cash"]), currency) if row["cash"] is not None else None,
        currency=currency,
        points_total=sum(r["points"] for r in lines),
        payment=payment,
        status_reason=row["status_reason"],
        refund_transaction=row["refund_transaction"],
    )


async def get_order(pool: asyncpg.Pool, schema: str, order_id: str) -> schemas.Order:
    s = quoted_schema(schema)
    async with pool.acquire() as conn:
        return await _out(conn, s, await _load(conn, s, order_id, lock=False))


# --- what happens to an order after it is placed -------------------------------------------


def _state_error(action: str, row: asyncpg.Record) -> Conflict:
    if row["status_reason"] == "payment_timeout":
        return Conflict(
            "The order's payment window closed; it was cancelled.", code="payment_expired"
        )
    return Conflict(
        f"Cannot {action} an order that is {row['status']}.", code="invalid_order_state"
    )


async def _give_back(
    conn: Conn, s: str, row: asyncpg.Record, *, restock: bool, granted_by: str, why: str
) -> str | None:
    """Return the order's points (and, with `restock`, its stock) through the ledger; void
    its unused coupons. Codes already shown stay with the member."""
    redeemed = await conn.fetchval(
        f"SELECT count(*) FROM {s}.coupons WHERE order_id = $1 AND redeemed_at IS NOT NULL",
        row["id"],
    )
    if redeemed:
        raise Conflict(
            "A coupon of this order was already redeemed.", code="coupon_already_redeemed"
        )
    await conn.execute(
        f"UPDATE {s}.coupons SET voided_at = now() WHERE order_id = $1 AND voided_at IS NULL",
        row["id"],
    )
    reversal = None
    if row["spend_transaction"]:
        try:
            reversal = await conn.fetchval(
                f"SELECT {s}.ledger_reverse($1, $2, $3, NULL, NULL, NULL)::text",
                row["spend_transaction"],
                f"order {row['id']} {why}",
                granted_by,
            )
        except asyncpg.exceptions.RaiseError as exc:
            raise ledger.api_error(exc) from None
    unrevealed = row["status"] == "pending_payment"
    if unrevealed:  # the member never saw the codes: they go back to the pool
        await conn.execute(
            f"UPDATE {s}.virtual_codes SET order_id = NULL WHERE order_id = $1", row["id"]
        )
    if restock:
        await conn.execute(
            f"UPDATE {s}.products p SET stock = p.stock + l.quantity FROM {s}.order_lines l"
            " WHERE l.order_id = $1 AND p.id = l.product_id AND p.stock IS NOT NULL"
            " AND (p.kind <> 'virtual' OR $2)",
            row["id"],
            unrevealed,
        )
    return ledger.decode_written(reversal).body.id if reversal else None


async def _finish(
    conn: Conn, s: str, order_id: str, status: str, event: str | None, **fields: Any
) -> schemas.Order:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=3))
    row = await conn.fetchrow(
        f"UPDATE {s}.orders SET status = $2, updated_at = now(){', ' + sets if sets else ''}"
        " WHERE id = $1 RETURNING *",
        order_id,
        status,
        *fields.values(),
    )
    out = await _out(conn, s, row)
    if event:
        await conn.execute(
            f"SELECT {s}.ledger_event($1, $2::jsonb)", event, msgspec.json.encode(out).decode()
        )
    return out


async def _cancel_unpaid(conn: Conn, s: str, order_id: str, reason: str, granted_by: str) -> bool:
    async with conn.transaction():
        row = await _load(conn, s, order_id)
        if row["status"] != "pending_payment":
            return False
        await _give_back(conn, s, row, restock=True, granted_by=granted_by, why="cancelled")
        payment = _payment_of(row) | {"status": "failed"}
        await _finish(
            conn,
            s,
            order_id,
            "cancelled",
            "order.cancelled",
            status_reason=reason,
            payment=msgspec.json.encode(payment).decode(),
        )
        return True


async def _refund_cash(
    tenant_id: str, order_id: str, payment: dict[str, Any], cash: Decimal, currency: str
) -> str | None:
    """Give back a taken cash part (before the order changes: the key makes a retry safe)."""
    if payment.get("status") != "succeeded":
        return None
    refund_id: str | None = await call_first(
        "pointsmall_refund_payment",
        provider=payment["provider"],
        request=RefundRequest(
            tenant_id=tenant_id,
            order_id=order_id,
            payment_id=payment["payment_id"],
            amount=money(Fraction(cash), currency),
            currency=currency,
            idempotency_key=f"{tenant_id}:{order_id}:refund",
        ),
    )
    if refund_id is None:
        raise ProviderFailed(f"No payment provider {payment['provider']!r} is installed.")
    return refund_id


def _payment_of(row: asyncpg.Record) -> dict[str, Any]:
    payment: dict[str, Any] = msgspec.json.decode(row["payment"]) if row["payment"] else {}
    return payment


async def change(
    pool: asyncpg.Pool,
    schema: str,
    tenant_id: str,
    order_id: str,
    action: str,
    *,
    granted_by: str,
    restock: bool = True,
) -> schemas.Order:
    """`cancel` (pending or confirmed → cancelled, stock back), `fulfill` (confirmed →
    fulfilled), `refund` (confirmed or fulfilled → refunded, stock back only on request).
    Points and paid cash come back with cancel and refund; anything else is 409."""
    s = quoted_schema(schema)
    allowed = {
        "cancel": ("pending_payment", "confirmed"),
        "fulfill": ("confirmed",),
        "refund": ("confirmed", "fulfilled"),
    }[action]
    async with pool.acquire() as conn:
        seen = await _load(conn, s, order_id, lock=False)
        if seen["status"] not in allowed:
            raise _state_error(action, seen)
        refund_id = (
            await _refund_cash(
                tenant_id, order_id, _payment_of(seen), seen["cash"], seen["currency"]
            )
            if action != "fulfill"
            else None
        )
        async with conn.transaction():
            row = await _load(conn, s, order_id)
            if row["status"] not in allowed:
                raise _state_error(action, row)
            if action == "fulfill":
                return await _finish(conn, s, order_id, "fulfilled", "order.fulfilled")
            reversal = await _give_back(
                conn,
                s,
                row,
                restock=restock or action == "cancel",
                granted_by=granted_by,
                why="cancelled" if action == "cancel" else "refunded",
            )
            fields: dict[str, Any] = {"refund_transaction": reversal}
            if refund_id:
                payment = _payment_of(row) | {"status": "refunded", "refund_id": refund_id}
                fields["payment"] = msgspec.json.encode(payment).decode()
            if action == "cancel":
                fields["status_reason"] = "requested"
                return await _finish(conn, s, order_id, "cancelled", "order.cancelled", **fields)
            return await _finish(conn, s, order_id, "refunded", "order.refunded", **fields)


async def confirm_payment(
    pool: asyncpg.Pool,
    schema: str,
    tenant_id: str,
    order_id: str,
    payment_id: str,
    *,
    granted_by: str,
) -> schemas.Order:
    """pending_payment → confirmed when the provider's payment is done and in time. After
    the deadline the order is cancelled and the confirmation refused (409 payment_expired);
    cash the provider reports as taken is then refunded."""
    s = quoted_schema(schema)
    async with pool.acquire() as conn:
        seen = await _load(conn, s, order_id, lock=False)
        payment = _payment_of(seen)
        if seen["status"] != "pending_payment":
            raise _state_error("confirm the payment of", seen)
        if payment.get("payment_id") != payment_id:
            raise Conflict("That is not this order's payment.", code="payment_mismatch")
        if payment["provider"] != "manual":
            intent: PaymentIntent | None = await call_first(
                "pointsmall_payment_status", provider=payment["provider"], payment_id=payment_id
            )
            if intent is None or intent.status != "succeeded":
                raise Conflict("The provider has not taken the payment.", code="payment_incomplete")
        if seen["payment_expires_at"] <= datetime.now(UTC):
            await _cancel_unpaid(conn, s, order_id, "payment_timeout", granted_by)
            late = await _load(conn, s, order_id, lock=False)
            if late["status"] == "cancelled" and payment["provider"] != "manual":
                # The provider took the cash after the deadline: it goes back. (With `manual`
                # the merchant holds the cash and gives it back itself.)
                await _refund_cash(
                    tenant_id,
                    order_id,
                    payment | {"status": "succeeded"},
                    late["cash"],
                    late["currency"],
                )
            raise _state_error("confirm the payment of", late)
        async with conn.transaction():
            row = await _load(conn, s, order_id)
            if row["status"] != "pending_payment":
                raise _state_error("confirm the payment of", row)
            await _issue_coupons(conn, s, order_id)
            payment["status"] = "succeeded"
            return await _finish(
                conn,
                s,
                order_id,
                "confirmed",
                "order.confirmed",
                payment=msgspec.json.encode(payment).decode(),
            )


async def expire_unpaid(pool: asyncpg.Pool, schema: str, *, limit: int = 1000) -> int:
    """Cancel orders whose payment window closed: points and stock come back."""
    s = quoted_schema(schema)
    async with pool.acquire() as conn:
        due = await conn.fetch(
            f"SELECT id FROM {s}.orders WHERE status = 'pending_payment'"
            " AND payment_expires_at <= now() ORDER BY payment_expires_at LIMIT $1",
            limit,
        )
        cancelled = 0
        for row in due:
            cancelled += await _cancel_unpaid(conn, s, row["id"], "payment_timeout", "system:sweep")
    return cancelled
