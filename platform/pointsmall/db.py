"""Declarative bases for the shared and tenant schemas, and the per-request unit of work."""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pointsmall_tenants import TENANTS_SCHEMA, tenant_bind, tenants_table

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class SharedBase(DeclarativeBase):
    """Tables of the shared schema: tenants, staff, credentials."""

    metadata = MetaData(schema=TENANTS_SCHEMA, naming_convention=NAMING)


class TenantBase(DeclarativeBase):
    """Tables of each tenant's schema. Schema None: bound per session by translate map."""

    metadata = MetaData(naming_convention=NAMING)


TENANTS = tenants_table(SharedBase.metadata)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class TenantDb:
    """The database side of one request: a session bound to one tenant, opened on first use.

    Services flush; only the request layer (the unit-of-work middleware) commits.
    """

    def __init__(self, engine: AsyncEngine, schema: str) -> None:
        self.schema = schema
        self._engine = engine
        self._session: AsyncSession | None = None
        # Work that must only happen once the change is durable (enqueueing jobs about it).
        self.after_commit: list[Callable[[], Awaitable[None]]] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = AsyncSession(
                bind=tenant_bind(self._engine, self.schema), expire_on_commit=False
            )
        return self._session

    async def finish(self, *, commit: bool) -> None:
        if self._session is None:
            return
        try:
            if commit:
                await self._session.commit()
            else:
                await self._session.rollback()
        finally:
            await self._session.close()
            self._session = None
        if commit:
            for work in self.after_commit:
                try:
                    await work()
                except Exception:  # the committed change stands; sweeps pick up what this missed
                    logging.getLogger("pointsmall").exception("after-commit work failed")
        self.after_commit = []
