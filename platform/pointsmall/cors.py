"""CORS for `/v1`, per tenant: browsers on a merchant's sites (the member mall widget) may call
the API when the tenant lists the site's origin in `settings.cors_origins`.

A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) carries no
credential, so the tenant cannot be known from it. It is therefore answered for any origin
that some tenant lists (`shared.tenant_cors_origins`): 204 with the methods and headers the
API takes, cached by the browser for 10 minutes. A preflight does nothing by itself; what
counts is the actual request, which carries the credential: its answer gets
`Access-Control-Allow-Origin` only when the origin is on the list of the tenant whose
credential it carries, so a site listed by one tenant cannot read answers given to another
tenant's credentials. An answer to a request without a usable credential (401) is readable
by any listed origin, so the widget can tell an expired token from a network failure.
An origin no tenant lists gets no CORS headers: the browser refuses.

Credentials are bearer tokens the page sends itself in `Authorization`, never cookies, so
`Access-Control-Allow-Credentials` is not sent. The lists are cached per process for
`CACHE_SECONDS`; a change made through `PATCH /v1/settings` is seen at once in the process
that made it, in others within that time.
"""

import logging
import time
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.tenancy.models import TenantCorsOrigin

log = logging.getLogger("pointsmall.cors")

CACHE_SECONDS = 10.0
MAX_AGE_SECONDS = 600
ALLOW_METHODS = "DELETE, GET, HEAD, PATCH, POST"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
EXPOSE_HEADERS = "Idempotent-Replayed, Retry-After, X-Request-Id"
_MAX_ORIGIN = 300  # the longest origin a tenant can list
_MAX_REMEMBERED = 10_000  # origins remembered as listed or not, before the memory is reset


class OriginLists:
    """Which origins tenants list, remembered for `ttl` seconds."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._any: dict[str, tuple[float, bool]] = {}
        self._tenants: dict[str, tuple[float, frozenset[str]]] = {}

    def forget(self) -> None:
        self._any.clear()
        self._tenants.clear()

    async def listed_by_any(self, engine: AsyncEngine, origin: str) -> bool:
        if len(origin) > _MAX_ORIGIN:
            return False
        now = time.monotonic()
        known = self._any.get(origin)
        if known is not None and known[0] > now:
            return known[1]
        async with engine.connect() as conn:
            listed = bool(
                await conn.scalar(select(exists().where(TenantCorsOrigin.origin == origin)))
            )
        if len(self._any) >= _MAX_REMEMBERED:
            self._any.clear()  # bounded, whatever origins strangers send
        self._any[origin] = (now + self.ttl, listed)
        return listed

    async def listed_by(self, engine: AsyncEngine, tenant_id: str, origin: str) -> bool:
        now = time.monotonic()
        known = self._tenants.get(tenant_id)
        if known is None or known[0] <= now:
            async with engine.connect() as conn:
                rows = await conn.scalars(
                    select(TenantCorsOrigin.origin).where(TenantCorsOrigin.tenant_id == tenant_id)
                )
                known = (now + self.ttl, frozenset(rows))
            if len(self._tenants) >= _MAX_REMEMBERED:
                self._tenants.clear()
            self._tenants[tenant_id] = known
        return origin in known[1]


def _is_api(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class CorsMiddleware:
    def __init__(self, app: ASGIApp, lists: OriginLists) -> None:
        self.app = app
        self.lists = lists

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not _is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = MutableScopeHeaders(scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "OPTIONS" and "access-control-request-method" in headers:
            if await self._allowed(scope, None, origin):
                await self._preflight(send, origin)
                return
            await self.app(scope, receive, _with_vary(send))  # no CORS headers: refused
            return

        async def cors_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableScopeHeaders.from_message(message)
                user: Any = scope.get("user")
                tenant_id = getattr(user, "tenant_id", None)
                if await self._allowed(scope, tenant_id, origin):
                    out["Access-Control-Allow-Origin"] = origin
                    out["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                out.add("Vary", "Origin")
            await send(message)

        await self.app(scope, receive, cors_send)

    async def _allowed(self, scope: Scope, tenant_id: str | None, origin: str) -> bool:
        engine: AsyncEngine = scope["app"].state.engine
        try:
            if tenant_id is None:
                return await self.lists.listed_by_any(engine, origin)
            return await self.lists.listed_by(engine, tenant_id, origin)
        except Exception as exc:  # the database away: no CORS headers, the browser refuses
            log.warning("CORS origins unavailable: %s", type(exc).__name__)
            return False

    @staticmethod
    async def _preflight(send: Send, origin: str) -> None:
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ALLOW_METHODS.encode()),
            (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
            (b"access-control-max-age", str(MAX_AGE_SECONDS).encode()),
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _with_vary(send: Send) -> Send:
    async def vary_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            MutableScopeHeaders.from_message(message).add("Vary", "Origin")
        await send(message)

    return vary_send


def wrap_cors(app: Any) -> None:
    """Put `CorsMiddleware` around the app's router (inside the request-id layer)."""
    lists = OriginLists()
    app.state.cors_origins = lists
    app.asgi_handler = CorsMiddleware(app.asgi_handler, lists)


def forget_origins(app: Any) -> None:
    """Drop this process's remembered lists (after a tenant changed its origins)."""
    lists: OriginLists | None = app.state.get("cors_origins")
    if lists is not None:
        lists.forget()
