"""The request's unit of work, and `Idempotency-Key` on POST.

Each authenticated request gets a `TenantDb` (a session bound to its tenant, opened on
first use). The response is held back until the transaction has committed, so a client
never hears "created" for a change that then failed to commit, and a 4xx/5xx rolls
everything back: no half-written change.

With an `Idempotency-Key`, the key's row is inserted in that same transaction before the
handler runs. A concurrent request with the same key blocks on the row (the unique index)
until the first commits, then replays its stored answer; if the first rolled back, the
second runs. So one key gives exactly one change. Only successful (2xx/3xx) answers are
stored: a failed request may be retried with the same key, as with Stripe's validation
errors.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from pointsmall.auth.principal import Principal
from pointsmall.db import TenantDb
from pointsmall.errors import PROBLEM_MEDIA_TYPE, make_problem
from pointsmall.idempotency.models import IdempotencyKey
from pointsmall.keyring import secret_box
from pointsmall.settings import Settings

REPLAYED_HEADER = "Idempotent-Replayed"
# Route option for handlers whose single SQL call claims and stores the key itself
# (the ledger's hot writes): the middleware only checks the key and fingerprints the body.
NATIVE = {"idempotency": "native"}


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The request's key and body fingerprint, for handlers that store the key themselves."""

    key: str | None = None
    fingerprint: bytes | None = None


_KEY_CHARS = frozenset(map(chr, range(0x21, 0x7F)))


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> bytes:
    """Digest of the request; JSON bodies are canonicalised (key order, spacing ignored)."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        canonical = body  # the body check refuses it; the digest just must not fail
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), query, canonical])).digest()


class _Buffered:
    """Collects the downstream response so it can be sent after the commit."""

    def __init__(self) -> None:
        self.start: dict[str, Any] | None = None
        self.body: list[bytes] = []

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.start = dict(message)
        elif message["type"] == "http.response.body":
            self.body.append(message.get("body", b""))

    @property
    def status(self) -> int:
        return int(self.start["status"]) if self.start else 500

    @property
    def content_type(self) -> str:
        headers: list[tuple[bytes, bytes]] = (self.start or {}).get("headers", [])
        for name, value in headers:
            if name.lower() == b"content-type":
                return str(value.decode("latin-1"))
        return "application/json"


async def _send_whole(
    send: Send, status: int, body: bytes, content_type: str, extra: dict[str, str]
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_problem(send: Send, status: int, code: str, title: str, detail: str) -> None:
    body = msgspec.json.encode(make_problem(status, code, title, detail))
    await _send_whole(send, status, body, PROBLEM_MEDIA_TYPE, {})


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, refused (`_TooLarge`) as soon as it passes `limit` bytes: a body is
    never buffered beyond the limit, whatever its framing (chunked bodies announce no
    length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes) -> Receive:
    sent = False

    async def receive() -> Any:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


# Stored answers are sealed (AES-GCM, the secret key ring), bound to the tenant and key: an
# answer may carry a secret shown once (a new API key, a webhook secret), and the store
# keeps it for a day. Answers stored before sealing began are replayed as they are.
_SEALED = b"sealed:"


def seal_answer(settings: Settings, binding: str, body: bytes) -> bytes:
    """A stored answer as kept at rest; `binding` (the key's scope and the key) is the
    associated data, so it opens only for the row it was written for."""
    return _SEALED + secret_box(settings).seal(body, binding)


def open_answer(settings: Settings, binding: str, stored: bytes) -> bytes:
    if not stored.startswith(_SEALED):
        return stored
    return secret_box(settings).open(stored[len(_SEALED) :], binding)


def valid_key(key: str) -> bool:
    """1 to 255 printable ASCII characters."""
    return 1 <= len(key) <= 255 and set(key) <= _KEY_CHARS


def _binding(scope: Scope, key: str) -> str:
    return f"idempotency:{scope['user'].schema}:{key}"


def _sealed(scope: Scope, key: str, body: bytes) -> bytes:
    return seal_answer(scope["app"].state.settings, _binding(scope, key), body)


def _unsealed(scope: Scope, key: str, stored: bytes) -> bytes:
    return open_answer(scope["app"].state.settings, _binding(scope, key), stored)


class UnitOfWorkMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or "user" not in scope:
            # OPTIONS (CORS preflights) is answered without a credential and touches no data.
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method"))
        principal: Principal = scope["user"]
        db = TenantDb(
            scope["app"].state.tenant_engines.for_schema(principal.schema), principal.schema
        )
        scope.setdefault("state", {})["tenant_db"] = db
        key = MutableScopeHeaders(scope).get("idempotency-key") if method == "POST" else None
        try:
            if key is not None:
                await self._idempotent(db, key, scope, receive, send)
            else:
                await self._plain(db, scope, receive, send)
        finally:
            await db.finish(commit=False)  # a no-op after a commit; otherwise rolls back

    async def _plain(self, db: TenantDb, scope: Scope, receive: Receive, send: Send) -> None:
        buffered = _Buffered()
        await self.app(scope, receive, buffered)
        await db.finish(commit=buffered.status < 400)
        await self._forward(buffered, send)

    async def _idempotent(
        self, db: TenantDb, key: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if not valid_key(key):
            await _send_problem(
                send,
                422,
                "validation_error",
                "Validation failed",
                "Idempotency-Key must be 1 to 255 printable ASCII characters.",
            )
            return
        limit = scope["app"].request_max_body_size
        max_body = limit if isinstance(limit, int) else 1_048_576
        try:
            body = await _read_body(receive, max_body)
        except _TooLarge:
            await _send_problem(
                send,
                413,
                "payload_too_large",
                "Payload too large",
                f"The body is larger than {max_body} bytes.",
            )
            return
        digest = fingerprint(
            str(scope.get("method")), scope["path"], scope.get("query_string", b""), body
        )
        if scope["route_handler"].opt.get("idempotency") == "native":
            scope.setdefault("state", {})["idempotency"] = Idempotency(key, digest)
            await self._plain(db, scope, _replaying(body), send)
            return
        session = db.session
        claimed = (
            await session.execute(
                pg_insert(IdempotencyKey)
                .values(key=key, fingerprint=digest)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(IdempotencyKey.key)
            )
        ).first()
        if claimed is None:
            stored = (
                await session.execute(
                    select(
                        IdempotencyKey.fingerprint,
                        IdempotencyKey.response_status,
                        IdempotencyKey.response_body,
                        IdempotencyKey.response_type,
                    ).where(IdempotencyKey.key == key)
                )
            ).one_or_none()
            await db.finish(commit=False)
            if stored is None:  # purged between the two statements: let the client retry
                await _send_problem(
                    send, 409, "idempotency_conflict", "Conflict", "Retry the request."
                )
            elif stored.fingerprint != digest:
                await _send_problem(
                    send,
                    409,
                    "idempotency_conflict",
                    "Idempotency key reused",
                    "This Idempotency-Key was used with a different request.",
                )
            else:
                try:
                    answer = _unsealed(scope, key, stored.response_body)
                except (InvalidTag, KeyError):  # sealed under a key since taken off the ring
                    await _send_problem(
                        send,
                        409,
                        "idempotency_conflict",
                        "Stored answer unreadable",
                        "The answer stored for this Idempotency-Key can no longer be read; "
                        "use a new key.",
                    )
                    return
                await _send_whole(
                    send,
                    stored.response_status,
                    answer,
                    stored.response_type,
                    {REPLAYED_HEADER: "true"},
                )
            return
        buffered = _Buffered()
        await self.app(scope, _replaying(body), buffered)
        if buffered.status < 400:
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.key == key)
                .values(
                    response_status=buffered.status,
                    response_body=_sealed(scope, key, b"".join(buffered.body)),
                    response_type=buffered.content_type,
                )
            )
            await db.finish(commit=True)
        else:
            await db.finish(commit=False)
        await self._forward(buffered, send)

    @staticmethod
    async def _forward(buffered: _Buffered, send: Send) -> None:
        if buffered.start is None:
            await _send_problem(send, 500, "internal_error", "Internal error", "No response.")
            return
        await send(buffered.start)  # type: ignore[arg-type]
        await send(
            {"type": "http.response.body", "body": b"".join(buffered.body), "more_body": False}
        )
