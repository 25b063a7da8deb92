from datetime import datetime
from typing import Annotated

import msgspec

from pointsmall.schemas import Email, Name

Slug = Annotated[
    str, msgspec.Meta(min_length=3, max_length=48, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])$")
]
TimeZone = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=256, pattern=r"^[^\x00]*$")]


class SignupCreate(msgspec.Struct, forbid_unknown_fields=True):
    merchant_name: Name
    admin_email: Email
    password: Password
    slug: Slug | None = None
    timezone: TimeZone = "UTC"
    currency: Currency = "USD"


class TenantOut(msgspec.Struct):
    id: str
    slug: str
    name: str


class AdminOut(msgspec.Struct):
    id: str
    email: str


class SignupResult(msgspec.Struct):
    """`api_key` is shown this once; only its digest is stored."""

    tenant: TenantOut
    admin: AdminOut
    api_key: str


Rate = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,6}(\.[0-9]{1,6})?$")]
Share = Annotated[str, msgspec.Meta(pattern=r"^(0(\.[0-9]{1,3})?|1(\.0{1,3})?)$")]
BackdateDays = Annotated[int, msgspec.Meta(ge=0, le=365)]


class ProgramSettings(msgspec.Struct):
    """`point_value`: what one point is worth in `currency` (0.01: 100 points = 1 unit);
    `max_points_share`: the largest share of an order's price payable in points (0 to 1);
    `checkin_backdate_days`: how many days before today (in `timezone`) a check-in may be
    dated (0: today only)."""

    timezone: str
    currency: str
    point_value: str
    max_points_share: str
    checkin_backdate_days: int
    updated_at: datetime
    object: str = "settings"


class ProgramSettingsUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    timezone: TimeZone | msgspec.UnsetType = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    point_value: Rate | msgspec.UnsetType = msgspec.UNSET
    max_points_share: Share | msgspec.UnsetType = msgspec.UNSET
    checkin_backdate_days: BackdateDays | msgspec.UnsetType = msgspec.UNSET
