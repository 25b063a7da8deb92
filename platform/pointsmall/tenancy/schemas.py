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
