"""`GET/PATCH /v1/settings`: the program's time zone, currency, points-to-cash rate, the
largest share of a price payable in points and how far back a check-in may be dated."""

from decimal import Decimal

import msgspec
from litestar import Controller, get, patch
from litestar.params import JSONBody
from sqlalchemy import exists, select

from pointsmall.auth.middleware import requires
from pointsmall.deps import Session
from pointsmall.errors import Conflict, FieldError, InvalidInput, problem_responses
from pointsmall.mall.models import Product
from pointsmall.tenancy.models import TenantSettings
from pointsmall.tenancy.schemas import ProgramSettings, ProgramSettingsUpdate
from pointsmall.tenancy.services import known_time_zone


def _out(row: TenantSettings) -> ProgramSettings:
    return ProgramSettings(
        timezone=row.timezone,
        currency=row.currency,
        point_value=str(row.point_value.normalize()),
        max_points_share=str(row.max_points_share.normalize()),
        checkin_backdate_days=row.checkin_backdate_days,
        updated_at=row.updated_at,
    )


class SettingsController(Controller):
    path = "/settings"
    tags = ["Settings"]

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403))
    async def get_settings(self, session: Session) -> ProgramSettings:
        return _out(await session.get_one(TenantSettings, 1))

    @patch("/", guards=[requires("admin")], responses=problem_responses(401, 403, 409, 422))
    async def update_settings(
        self, session: Session, data: JSONBody[ProgramSettingsUpdate]
    ) -> ProgramSettings:
        """A currency change is refused (409 `currency_in_use`) while products carry a cash
        part in the old one."""
        row = await session.get_one(TenantSettings, 1, with_for_update=True)
        if isinstance(data.timezone, str) and not known_time_zone(data.timezone):
            raise InvalidInput(
                errors=[FieldError(field="timezone", message="not an IANA time zone")]
            )
        if isinstance(data.point_value, str) and Decimal(data.point_value) == 0:
            raise InvalidInput(errors=[FieldError(field="point_value", message="must be above 0")])
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
        for field, value in changes.items():
            setattr(
                row,
                field,
                Decimal(value) if field in ("point_value", "max_points_share") else value,
            )
        await session.flush()
        await session.refresh(row)
        return _out(row)
