"""`GET/PATCH /v1/settings`: the program's name, time zone, currency, points-to-cash rate,
the largest share of a price payable in points, how far back a check-in may be dated and
the origins browsers may call the API from.

`name` is the tenant's name in the shared registry and `cors_origins` live in the shared
schema (the edge judges a preflight before it knows the tenant): one place each, read and
written here in the request's transaction with the tenant's own settings row.
"""

from decimal import Decimal
from typing import Any

import msgspec
from litestar import Controller, Request, get, patch
from litestar.params import JSONBody
from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.auth.middleware import requires
from pointsmall.auth.principal import Principal
from pointsmall.cors import forget_origins
from pointsmall.db import TENANTS, TenantDb
from pointsmall.deps import Session
from pointsmall.errors import Conflict, FieldError, InvalidInput, problem_responses
from pointsmall.mall.models import Product
from pointsmall.mall.money import CURRENCIES
from pointsmall.tenancy.models import TenantCorsOrigin, TenantSettings
from pointsmall.tenancy.schemas import ProgramSettings, ProgramSettingsUpdate
from pointsmall.tenancy.zone import known_time_zone

AuthRequest = Request[Principal, str, Any]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHARED_FIELDS = ("name", "cors_origins")


def canonical_origin(origin: str) -> str:
    """The origin as a browser sends it: a default port is left out."""
    scheme, _, authority = origin.partition("://")
    host, colon, port = authority.rpartition(":")
    if colon and int(port) == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return origin


async def _out(session: AsyncSession, tenant_id: str, row: TenantSettings) -> ProgramSettings:
    name = await session.scalar(select(TENANTS.c.name).where(TENANTS.c.id == tenant_id))
    origins = await session.scalars(
        select(TenantCorsOrigin.origin)
        .where(TenantCorsOrigin.tenant_id == tenant_id)
        .order_by(TenantCorsOrigin.origin)
    )
    return ProgramSettings(
        name=name or "",
        timezone=row.timezone,
        currency=row.currency,
        point_value=str(row.point_value.normalize()),
        max_points_share=str(row.max_points_share.normalize()),
        checkin_backdate_days=row.checkin_backdate_days,
        cors_origins=list(origins),
        updated_at=row.updated_at,
    )


class SettingsController(Controller):
    path = "/settings"
    tags = ["Settings"]

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403, 503))
    async def get_settings(self, request: AuthRequest, session: Session) -> ProgramSettings:
        row = await session.get_one(TenantSettings, 1)
        return await _out(session, request.user.tenant_id, row)

    @patch("/", guards=[requires("admin")], responses=problem_responses(401, 403, 409, 422, 503))
    async def update_settings(
        self, request: AuthRequest, session: Session, data: JSONBody[ProgramSettingsUpdate]
    ) -> ProgramSettings:
        """A currency change is refused (409 `currency_in_use`) while products carry a cash
        part in the old one. `name` and `cors_origins` belong to the tenant (test and live
        alike); `cors_origins` replaces the list."""
        tenant_id = request.user.tenant_id
        row = await session.get_one(TenantSettings, 1, with_for_update=True)
        if isinstance(data.timezone, str) and not known_time_zone(data.timezone):
            raise InvalidInput(
                errors=[FieldError(field="timezone", message="not an IANA time zone")]
            )
        if isinstance(data.currency, str) and data.currency not in CURRENCIES:
            raise InvalidInput(
                errors=[FieldError(field="currency", message="not an ISO 4217 currency code")]
            )
        if isinstance(data.point_value, str) and Decimal(data.point_value) == 0:
            raise InvalidInput(errors=[FieldError(field="point_value", message="must be above 0")])
        if isinstance(data.cors_origins, list):
            # The pattern's `$` lets one final newline through in Python; the document's not.
            bad = [i for i, origin in enumerate(data.cors_origins) if origin.endswith("\n")]
            if bad:
                raise InvalidInput(
                    errors=[FieldError(field=f"cors_origins[{bad[0]}]", message="not an origin")]
                )
        if isinstance(data.currency, str) and data.currency != row.currency:
            priced = await session.scalar(
                select(
                    exists().where(Product.cash_price.is_not(None), Product.status != "archived")
                )
            )
            if priced:
                raise Conflict(
                    "Products carry cash parts in the current currency.", code="currency_in_use"
                )
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        if any(field in changes for field in _SHARED_FIELDS):
            # The registry row orders concurrent changes of the tenant's shared settings
            # (test and live settings rows are apart; these are one per tenant).
            await session.execute(
                select(TENANTS.c.id).where(TENANTS.c.id == tenant_id).with_for_update()
            )
            await session.execute(
                update(TenantSettings).where(TenantSettings.id == 1).values(updated_at=func.now())
            )
        if "name" in changes:
            await session.execute(
                update(TENANTS).where(TENANTS.c.id == tenant_id).values(name=changes.pop("name"))
            )
        if "cors_origins" in changes:
            await _replace_origins(request, session, tenant_id, changes.pop("cors_origins"))
        for field, value in changes.items():
            setattr(
                row,
                field,
                Decimal(value) if field in ("point_value", "max_points_share") else value,
            )
        await session.flush()
        await session.refresh(row)
        return await _out(session, tenant_id, row)


async def _replace_origins(
    request: AuthRequest, session: AsyncSession, tenant_id: str, origins: list[str]
) -> None:
    wanted = list(dict.fromkeys(canonical_origin(o) for o in origins))
    await session.execute(delete(TenantCorsOrigin).where(TenantCorsOrigin.tenant_id == tenant_id))
    if wanted:
        await session.execute(
            insert(TenantCorsOrigin), [{"tenant_id": tenant_id, "origin": o} for o in wanted]
        )
    db: TenantDb = request.state.tenant_db

    async def forget() -> None:
        forget_origins(request.app)

    db.after_commit.append(forget)
