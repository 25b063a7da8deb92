"""Redemption orders. Placing one is one call of `mall_place_order` (one round trip); every
later change is one transaction on the driver pool: the order's row lock, the checks,
stock, the ledger call and the outbox event succeed or fail together. Payment providers are
called outside transactions, with a key that makes a retry safe."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from pointsmall.errors import ApiError, Conflict, FieldError, InvalidInput, NotFound
from pointsmall.idempotency.middleware import Idempotency
from pointsmall.ids import is_id, new_id
from pointsmall.ledger import services as ledger
from pointsmall.mall import schemas
from pointsmall.pagination import to_page
from pointsmall.payments.contracts import PaymentIntent, PaymentRequest, RefundRequest
from pointsmall.plugins import call_first, payment_providers
from pointsmall.schemas import Page
from pointsmall_tenants import quoted_schema

Conn = Any  # an asyncpg connection inside a transaction


class _Placed(msgspec.Struct):
    replayed: bool
    order: schemas.Order


_placed = msgspec.json.Decoder(_Placed)


def refusal(exc: asyncpg.exceptions.RaiseError) -> Exception:
    """The API's answer to what `mall_place_order` RAISEd (`mall:<code>`, the status as
    HINT, the field, if any, as COLUMN)."""
    if not exc.message.startswith("mall:"):
        return ledger.api_error(exc)
    code, detail, status = exc.message.removeprefix("mall:"), exc.detail or "", int(exc.hint or 409)
    if status == 404:
        return NotFound(detail)
    field = getattr(exc, "column_name", None)
    errors = [FieldError(field=field, message=detail)] if field else []
    if status == 422:
        return InvalidInput(detail, code=code, errors=errors)
    return ApiError(detail, status=status, code=code, title="Order refused", errors=errors)


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
    if pay.provider not in payment_providers():  # valid on its own; not installed here: 409
        raise Conflict(
            f"No payment provider {pay.provider!r} is installed.",
            code="unknown_payment_provider",
            errors=[FieldError(field="payment.provider", message="not installed")],
        )
    quantities: dict[str, int] = {}
    for line in data.lines:
        quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
    try:
        raw = await pool.fetchval(
            f"SELECT {s}.mall_place_order($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11,"
            " $12::jsonb)::text",
            idem.key,
            idem.fingerprint,
            new_id("ord"),
            data.member_id,
            msgspec.json.encode(
                [{"product_id": p, "quantity": q} for p, q in sorted(quantities.items())]
            ).decode(),
            pay.points,
            Decimal(pay.cash.amount) if pay.cash else None,
            pay.cash.currency if pay.cash else None,
            pay.provider,
            payment_timeout,
            granted_by,
            msgspec.json.encode(data.shipping_address).decode() if data.shipping_address else None,
        )
    except asyncpg.exceptions.RaiseError as exc:
        raise refusal(exc) from None
    placed = _placed.decode(raw)
    order = placed.order
    if placed.replayed:
        return order, True
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
        expires_at=utc_text(order.payment.expires_at),
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
    # `order.created` waits for the payment, so that it carries the `payment_id` that
    # confirm-payment needs (`mall_place_order` writes it only for orders without cash).
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"UPDATE {s}.orders SET payment = payment || $2::jsonb WHERE id = $1",
            order.id,
            msgspec.json.encode(intent).decode(),
        )
        out = await _out(conn, s, order.id)
        if out.status == "pending_payment":  # not cancelled meanwhile
            await _event(conn, s, "order.created", out)
        return out, False


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


_order = msgspec.json.Decoder(schemas.Order)
_orders = msgspec.json.Decoder(list[schemas.Order])


def utc_text(moment: datetime) -> str:
    """RFC 3339 in UTC with `Z`, as the API writes every time."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _out(conn: Conn, s: str, order_id: str) -> schemas.Order:
    """The order as the API shows it (`mall_order_json`, the one definition of its shape)."""
    raw = await conn.fetchval(f"SELECT {s}.mall_order_json($1)::text", order_id)
    if raw is None:
        raise NotFound("No such order.")
    return _order.decode(raw)


async def get_order(pool: asyncpg.Pool, schema: str, order_id: str) -> schemas.Order:
    async with pool.acquire() as conn:
        return await _out(conn, quoted_schema(schema), order_id)


async def list_orders(
    pool: asyncpg.Pool,
    schema: str,
    *,
    limit: int,
    starting_after: str | None,
    member_id: str | None,
    status: str | None,
    created_gte: datetime | None,
    created_lt: datetime | None,
) -> Page[schemas.Order]:
    """Newest first (ids are time-ordered), each as `mall_order_json` renders it."""
    s = quoted_schema(schema)
    filters = {
        "member_id = $": member_id,
        "status = $": status,
        "created_at >= $": created_gte,
        "created_at < $": created_lt,
        "id < $": starting_after,
    }
    given = [(sql, value) for sql, value in filters.items() if value is not None]
    where = " AND ".join(f"{sql}{i}" for i, (sql, _) in enumerate(given, start=2)) or "true"
    raw = await pool.fetchval(
        f"SELECT coalesce(jsonb_agg({s}.mall_order_json(o.id) ORDER BY o.id DESC), '[]')::text"
        f" FROM (SELECT id FROM {s}.orders WHERE {where} ORDER BY id DESC LIMIT $1) o",
        limit + 1,
        *(value for _, value in given),
    )
    return to_page(_orders.decode(raw), limit, lambda order: order, lambda order: order.id)


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
        raise Conflict("A coupon of this order was already redeemed.", code="coupon_redeemed")
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
    await conn.execute(
        f"UPDATE {s}.orders SET status = $2, updated_at = now(){', ' + sets if sets else ''}"
        " WHERE id = $1",
        order_id,
        status,
        *fields.values(),
    )
    out = await _out(conn, s, order_id)
    # An order whose payment was never made (its provider failed, or the process stopped
    # before it answered) was never announced, so its cancellation is not either.
    if event and (out.payment is None or out.payment.payment_id is not None):
        await _event(conn, s, event, out)
    return out


async def _event(conn: Conn, s: str, event: str, order: schemas.Order) -> None:
    await conn.execute(
        f"SELECT {s}.ledger_event($1, $2::jsonb)", event, msgspec.json.encode(order).decode()
    )


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
    conn: Conn, s: str, tenant_id: str, order_id: str, payment: dict[str, Any]
) -> str | None:
    """Give back a taken cash part (before the order changes: the key makes a retry safe)."""
    if payment.get("status") != "succeeded":
        return None
    order = await _out(conn, s, order_id)
    if order.cash is None or order.currency is None:
        return None
    refund_id: str | None = await call_first(
        "pointsmall_refund_payment",
        provider=payment["provider"],
        request=RefundRequest(
            tenant_id=tenant_id,
            order_id=order_id,
            payment_id=payment["payment_id"],
            amount=order.cash,
            currency=order.currency,
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
            await _refund_cash(conn, s, tenant_id, order_id, _payment_of(seen))
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
                await _refund_cash(conn, s, tenant_id, order_id, payment | {"status": "succeeded"})
            raise _state_error("confirm the payment of", late)
        async with conn.transaction():
            row = await _load(conn, s, order_id)
            if row["status"] != "pending_payment":
                raise _state_error("confirm the payment of", row)
            await conn.execute(f"SELECT {s}.mall_issue_coupons($1)", order_id)
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
