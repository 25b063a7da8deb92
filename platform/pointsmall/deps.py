"""Dependencies the /v1 handlers receive."""

from typing import Any, TypeAlias

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.db import TenantDb

Session: TypeAlias = NamedDependency[AsyncSession]


def provide_session(request: Request[Any, Any, Any]) -> AsyncSession:
    """The request's session, bound to the caller's tenant (see UnitOfWorkMiddleware)."""
    db: TenantDb = request.state.tenant_db
    return db.session
