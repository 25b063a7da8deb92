"""HTTP manners the router does not give on its own: `OPTIONS` names every method of its
path in `Allow`, and `HEAD` works wherever `GET` does.

Litestar's automatic OPTIONS handler lists the methods of one of the handlers sharing a
path (`OPTIONS /v1/members` said `OPTIONS, POST`, without GET); and it has no HEAD for a
GET. Both are answered here, around the router, from the routes the app really has.
"""

from collections import defaultdict
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def allowed_methods(app: Any) -> dict[str, str]:
    """Each path template's `Allow` value: its methods, HEAD where it has GET."""
    methods: dict[str, set[str]] = defaultdict(set)
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            methods[route.path_format] |= set(route.methods)
    for found in methods.values():
        if "GET" in found:
            found.add("HEAD")
    return {path: ", ".join(sorted(found)) for path, found in methods.items()}


class HttpMannersMiddleware:
    def __init__(self, app: ASGIApp, allow: dict[str, str]) -> None:
        self.app = app
        self.allow = allow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") not in ("OPTIONS", "HEAD"):
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope["method"] = "GET"  # answered as a GET whose body is not sent

        async def polite_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                allow = self.allow.get(scope.get("path_template", ""))
                headers = MutableScopeHeaders.from_message(message)
                if allow and (message["status"] == 405 or not head):
                    headers["Allow"] = allow
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}  # Content-Length stays that of the GET
            await send(message)

        try:
            await self.app(scope, receive, polite_send)
        finally:
            if head:
                scope["method"] = "HEAD"


def wrap_manners(app: Any) -> None:
    """Put `HttpMannersMiddleware` around the app's router (inside the request-id layer)."""
    app.asgi_handler = HttpMannersMiddleware(app.asgi_handler, allowed_methods(app))
