"""Webhook endpoints, their secrets, the message and attempt log, retries and test events."""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.errors import FieldError, InvalidInput, NotFound
from pointsmall.ids import is_id, new_id
from pointsmall.pagination import newest_first, to_page
from pointsmall.schemas import Page
from pointsmall.settings import Settings
from pointsmall.webhooks import relay, schemas
from pointsmall.webhooks.keys import secret_box
from pointsmall.webhooks.models import tables
from pointsmall_webhooks.signing import generate_secret
from pointsmall_webhooks.ssrf import UnsafeTarget, check_url

E, M, D, A, N = (
    tables.endpoints,
    tables.messages,
    tables.deliveries,
    tables.attempts,
    tables.notices,
)
ROTATION_GRACE = timedelta(hours=24)


async def _check(settings: Settings, url: str) -> None:
    try:
        await check_url(
            url,
            allow_private=settings.webhook_allow_private,
            require_https=settings.environment == "production",
        )
    except UnsafeTarget as exc:
        raise InvalidInput(
            f"Deliveries cannot go there: {exc}.",
            code="unsafe_url",
            errors=[FieldError(field="url", message=str(exc))],
        ) from None


def _check_event_types(patterns: list[str] | None) -> None:
    """Each pattern must match an event type we emit: a typo would otherwise subscribe to
    nothing, silently."""
    unknown = [
        p for p in patterns or [] if not any(relay.matches([p], t) for t in schemas.EVENT_TYPES)
    ]
    if unknown:
        known = ", ".join(schemas.EVENT_TYPES)
        raise InvalidInput(
            f"No event type matches {', '.join(unknown)}. The event types are: {known}"
            " (patterns such as `points.*` and `*` match them).",
            code="unknown_event_type",
            errors=[
                FieldError(field="event_types", message=f"{p} matches no event type")
                for p in unknown
            ],
        )


def _endpoint(row: Any, secret: str | None = None) -> schemas.Endpoint:
    return schemas.Endpoint(
        id=row.id,
        url=row.url,
        event_types=row.event_types,
        description=row.description,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        secret=secret if secret is not None else msgspec.UNSET,
    )


async def _row(session: AsyncSession, endpoint_id: str, *, lock: bool = False) -> Any:
    query = select(E).where(E.c.id == endpoint_id)
    row = (
        (await session.execute(query.with_for_update() if lock else query)).first()
        if is_id("wh", endpoint_id)
        else None
    )
    if row is None:
        raise NotFound("No such webhook endpoint.")
    return row


async def create_endpoint(
    session: AsyncSession, settings: Settings, data: schemas.EndpointCreate
) -> schemas.Endpoint:
    await _check(settings, data.url)
    _check_event_types(data.event_types)
    endpoint_id, secret = new_id("wh"), generate_secret()
    row = (
        await session.execute(
            insert(E)
            .values(
                id=endpoint_id,
                url=data.url,
                event_types=data.event_types,
                description=data.description,
                enabled=data.enabled,
                secret=secret_box(settings).encrypt(secret, endpoint_id),
            )
            .returning(E)
        )
    ).one()
    return _endpoint(row, secret)


async def list_endpoints(
    session: AsyncSession, *, limit: int, starting_after: str | None
) -> Page[schemas.Endpoint]:
    rows = (await session.execute(newest_first(select(E), E.c.id, limit, starting_after))).all()
    return to_page(rows, limit, _endpoint, lambda r: r.id)


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> schemas.Endpoint:
    return _endpoint(await _row(session, endpoint_id))


async def update_endpoint(
    session: AsyncSession, settings: Settings, endpoint_id: str, data: schemas.EndpointUpdate
) -> schemas.Endpoint:
    await _row(session, endpoint_id, lock=True)
    values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if "url" in values:
        await _check(settings, values["url"])
    if values.get("event_types"):
        _check_event_types(values["event_types"])
    if values.get("enabled") is True:
        values |= {"disabled_reason": None, "failing_since": None}
    if values.get("enabled") is False:
        # Disabling cancels what waits, in this transaction: a job that comes for one of
        # these deliveries finds it cancelled and does nothing.
        await session.execute(
            update(D)
            .where(D.c.endpoint_id == endpoint_id, D.c.status == "pending")
            .values(status="cancelled", next_attempt_at=None)
        )
    row = (
        await session.execute(
            update(E)
            .where(E.c.id == endpoint_id)
            .values(**values, updated_at=datetime.now(UTC))
            .returning(E)
        )
    ).one()
    return _endpoint(row)


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    """The endpoint and its pending deliveries go; the attempt log stays."""
    await _row(session, endpoint_id, lock=True)
    await session.execute(delete(D).where(D.c.endpoint_id == endpoint_id))
    await session.execute(delete(E).where(E.c.id == endpoint_id))


async def get_secret(session: AsyncSession, settings: Settings, endpoint_id: str) -> schemas.Secret:
    row = await _row(session, endpoint_id)
    expires = row.previous_secret_expires_at
    return schemas.Secret(
        secret=secret_box(settings).decrypt(row.secret, endpoint_id),
        previous_secret_expires_at=expires if expires and expires > datetime.now(UTC) else None,
    )


async def rotate_secret(
    session: AsyncSession, settings: Settings, endpoint_id: str
) -> schemas.Secret:
    """A new secret signs from now on; the old one signs beside it for 24 hours."""
    row = await _row(session, endpoint_id, lock=True)
    secret, expires = generate_secret(), datetime.now(UTC) + ROTATION_GRACE
    await session.execute(
        update(E)
        .where(E.c.id == endpoint_id)
        .values(
            secret=secret_box(settings).encrypt(secret, endpoint_id),
            previous_secret=row.secret,
            previous_secret_expires_at=expires,
            updated_at=datetime.now(UTC),
        )
    )
    return schemas.Secret(secret=secret, previous_secret_expires_at=expires)


def _delivery(row: Any) -> schemas.Delivery:
    return schemas.Delivery(
        id=row.message_id,
        endpoint_id=row.endpoint_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        created_at=row.created_at,
    )


_DELIVERY_COLUMNS = (
    D.c.message_id,
    D.c.endpoint_id,
    M.c.event_type,
    D.c.status,
    D.c.attempts,
    D.c.next_attempt_at,
    D.c.last_status_code,
    M.c.created_at,
)


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: str,
    *,
    limit: int,
    starting_after: str | None,
    status: str | None,
) -> Page[schemas.Delivery]:
    await _row(session, endpoint_id)
    query = (
        select(*_DELIVERY_COLUMNS)
        .join(M, M.c.id == D.c.message_id)
        .where(D.c.endpoint_id == endpoint_id)
    )
    if status is not None:
        query = query.where(D.c.status == status)
    rows = (await session.execute(newest_first(query, D.c.message_id, limit, starting_after))).all()
    return to_page(rows, limit, _delivery, lambda r: r.message_id)


async def _message(session: AsyncSession, message_id: str) -> Any:
    message = (
        (await session.execute(select(M).where(M.c.id == message_id))).first()
        if is_id("msg", message_id)
        else None
    )
    if message is None:
        raise NotFound("No such webhook message.")
    return message


async def get_message(session: AsyncSession, message_id: str) -> schemas.Message:
    message = await _message(session, message_id)
    deliveries = await session.execute(
        select(*_DELIVERY_COLUMNS)
        .join(M, M.c.id == D.c.message_id)
        .where(D.c.message_id == message_id)
        .order_by(D.c.endpoint_id)
    )
    attempts = await session.execute(
        select(A).where(A.c.message_id == message_id).order_by(A.c.endpoint_id, A.c.attempt, A.c.id)
    )
    return schemas.Message(
        id=message.id,
        event_id=message.event_id,
        event_type=message.event_type,
        payload=msgspec.json.decode(message.body),
        created_at=message.created_at,
        deliveries=[_delivery(r) for r in deliveries.all()],
        attempts=[
            schemas.Attempt(
                attempt=r.attempt,
                endpoint_id=r.endpoint_id,
                attempted_at=r.attempted_at,
                status_code=r.status_code,
                latency_ms=r.latency_ms,
                response_excerpt=r.response_excerpt,
                error=r.error,
                outcome=r.outcome,
            )
            for r in attempts.all()
        ],
    )


async def retry_message(
    session: AsyncSession, message_id: str, endpoint_id: str | None
) -> list[tuple[str, str, int]]:
    """Put the message's deliveries (or one) back in the queue now; returns what to enqueue
    once the transaction commits: (message, endpoint, attempt)."""
    await _message(session, message_id)  # 404 first
    query = (
        update(D)
        .where(D.c.message_id == message_id)
        .values(status="pending", next_attempt_at=datetime.now(UTC))
        .returning(D.c.message_id, D.c.endpoint_id, D.c.attempts)
    )
    if endpoint_id is not None:
        query = query.where(D.c.endpoint_id == endpoint_id)
    rows = (await session.execute(query)).all()
    if not rows:
        raise NotFound("The message was not sent to that endpoint.")
    return [(r.message_id, r.endpoint_id, r.attempts + 1) for r in rows]


async def send_test(
    session: AsyncSession, tenant_id: str, endpoint_id: str, *, livemode: bool
) -> tuple[str, str]:
    """A `webhook.test` message for this endpoint alone (enabled or not: it is a test)."""
    await _row(session, endpoint_id)
    message_id, now = new_id("msg"), datetime.now(UTC)
    event_id = new_id("evt")
    body = relay.message_body(
        event_id,
        "webhook.test",
        now,
        tenant_id,
        msgspec.json.encode({"endpoint_id": endpoint_id}),
        livemode=livemode,
    )
    await session.execute(
        insert(M).values(id=message_id, event_id=event_id, event_type="webhook.test", body=body)
    )
    await session.execute(
        insert(D).values(message_id=message_id, endpoint_id=endpoint_id, next_attempt_at=now)
    )
    return message_id, endpoint_id


async def list_notices(
    session: AsyncSession, endpoint_id: str, *, limit: int, starting_after: str | None
) -> Page[schemas.Notice]:
    """Newest first; a notice's id is `ntc_` and its row number."""
    await _row(session, endpoint_id)
    query = select(N).where(N.c.endpoint_id == endpoint_id)
    if starting_after:
        query = query.where(N.c.id < int(starting_after.removeprefix("ntc_")))
    rows = (await session.execute(query.order_by(N.c.id.desc()).limit(limit + 1))).all()
    return to_page(rows, limit, _notice, lambda r: f"ntc_{r.id}")


def _notice(row: Any) -> schemas.Notice:
    return schemas.Notice(f"ntc_{row.id}", row.endpoint_id, row.kind, row.detail, row.created_at)
