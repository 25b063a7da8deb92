"""The edge: every /v1 request names its tenant only through its credential."""

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from pointsmall.auth import services
from pointsmall.auth.principal import Principal

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pointsmall"'}


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException(
                "Send an API key as 'Authorization: Bearer <key>'.", headers=_CHALLENGE
            )
        token = token.strip()
        cache: services.PrincipalCache = connection.app.state.principals
        principal = cache.get(token)
        if principal is None:
            async with connection.app.state.engine.connect() as conn:
                principal = await services.authenticate(conn, token)
            if principal is not None:
                cache.put(token, principal)
        if principal is None:
            raise NotAuthorizedException(
                "The API key is unknown, revoked or malformed.", headers=_CHALLENGE
            )
        return AuthenticationResult(user=principal, auth=token)


def requires(scope: str) -> Any:
    """A guard: the credential must carry `scope` (or `admin`)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            return  # answered without a credential (controller guards reach OPTIONS too)
        principal: Principal = connection.user
        if not principal.allows(scope):
            raise PermissionDeniedException(f"This needs the '{scope}' scope.")

    return guard
