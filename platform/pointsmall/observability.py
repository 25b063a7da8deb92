"""JSON logs that carry the request id, and the outermost layer that assigns it and logs
each access."""

import contextvars
import logging
import re
import time
import uuid
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("pointsmall.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """One JSON object per line on stderr, every record stamped with the request id.

    Alembic's "Context impl" lines come with every provisioning and tell a reader nothing,
    so its runtime logger only speaks up for warnings.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


def _tenant_of(scope: Scope) -> str | None:
    user: Any = scope.get("user")
    return getattr(user, "tenant_id", None)


class RequestIdMiddleware:
    """Takes a sane `X-Request-Id` from the caller or makes one; echoes it; logs the access.

    It wraps the whole application, outside Litestar's router and its exception handler
    (see `wrap_outermost`), so every answer — routing 404s and 405s, 401s raised by the
    authentication middleware, OPTIONS and HEAD — carries the id and is logged with the
    status that was really sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        incoming = MutableScopeHeaders(scope).get("x-request-id")
        request_id = (
            incoming if incoming and _INCOMING_ID.fullmatch(incoming) else f"req_{uuid.uuid4().hex}"
        )
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)["X-Request-Id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope["path"],
                    "route": scope.get("path_template"),
                    # None: the connection ended before any answer was sent.
                    "status": status,
                    "tenant_id": _tenant_of(scope),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)


def wrap_outermost(app: Any) -> None:
    """Put `RequestIdMiddleware` around the app's whole ASGI handler (router and exception
    handler included); Litestar's own middleware list only wraps matched routes."""
    app.asgi_handler = RequestIdMiddleware(app.asgi_handler)
