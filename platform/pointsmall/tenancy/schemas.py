from datetime import datetime
from typing import Annotated, Any

import msgspec

from pointsmall.mall.money import CURRENCIES
from pointsmall.schemas import Email, Name
from pointsmall.tenancy.zone import time_zone_pattern


def _exact(pattern: str) -> str:
    """The decoder's form of a pattern: Python's `$` also matches before a final newline
    (`"USD" + newline` passed `^[A-Z]{3}$`), ECMA-262's does not; Python's end is `Z`
    escaped."""
    return pattern.removesuffix("$") + r"\Z" if pattern.endswith("$") else pattern


def _pattern(decoder: str, document: str | None = None, **constraints: Any) -> msgspec.Meta:
    """A string's pattern: made exact for the decoder; the document's may be narrower (the
    server checks the rest itself, with a clearer refusal than a pattern's)."""
    return msgspec.Meta(
        pattern=_exact(decoder),
        extra_json_schema={"extra": {"pattern": document or decoder}},
        **constraints,
    )


Slug = Annotated[str, _pattern(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])$", min_length=3, max_length=48)]
# An IANA name the host's time zone database has. The document's pattern matches exactly
# those names, so a name it admits is never refused; the server checks the set itself.
TimeZone = Annotated[
    str,
    _pattern(
        r"^[A-Za-z0-9_+\-/]+$",
        time_zone_pattern(),
        min_length=1,
        max_length=64,
        examples=["Asia/Shanghai"],
    ),
]
# An ISO 4217 code (the mall's list): a pattern listing them in the document (an enum would
# make each a case of its own for the contract test), the set checked by the server.
CURRENCY_PATTERN = "^(" + "|".join(sorted(CURRENCIES)) + ")$"
Currency = Annotated[str, _pattern(r"^[A-Z]{3}$", CURRENCY_PATTERN, examples=["USD"])]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=256, pattern=r"^[^\x00]*$")]


def _d(description: str) -> msgspec.Meta:
    return msgspec.Meta(description=description)


_NAME = "The program's name (the merchant's), 1 to 200 characters."
_TIME_ZONE = "The program's IANA time zone: local days (check-ins, limits) are counted in it."
_CURRENCY = "The program's currency (ISO 4217): cash prices and `point_value` are in it."


class SignupCreate(msgspec.Struct, forbid_unknown_fields=True):
    merchant_name: Annotated[Name, _d(_NAME)]
    admin_email: Annotated[Email, _d("The first admin's email (kept lower-cased).")]
    password: Annotated[Password, _d("The first admin's password, 10 to 256 characters.")]
    slug: (
        Annotated[Slug, _d("The tenant's URL label; made from the name when left out.")] | None
    ) = None
    timezone: Annotated[TimeZone, _d(_TIME_ZONE)] = "UTC"
    currency: Annotated[Currency, _d(_CURRENCY)] = "USD"


class TenantOut(msgspec.Struct):
    id: Annotated[str, _d("The tenant's id (`ten_…`).")]
    slug: Annotated[str, _d("The tenant's URL label.")]
    name: Annotated[str, _d("The program's name.")]


class AdminOut(msgspec.Struct):
    id: Annotated[str, _d("The admin's id (`usr_…`).")]
    email: Annotated[str, _d("The admin's email, lower-cased.")]


class SignupResult(msgspec.Struct):
    """`api_key` is shown this once; only its digest is stored."""

    tenant: Annotated[TenantOut, _d("The new tenant.")]
    admin: Annotated[AdminOut, _d("Its first admin.")]
    api_key: Annotated[
        str, _d("A test-mode key with the `admin` scope (`pm_test_…`), shown this once.")
    ]


# Above 0, at most 6 digits either side of the point.
_FRACTION_ABOVE_0 = (
    r"([1-9][0-9]{0,5}|0[1-9][0-9]{0,4}|00[1-9][0-9]{0,3}|000[1-9][0-9]{0,2}|0000[1-9][0-9]?"
    r"|00000[1-9])"
)
Rate = Annotated[
    str,
    _pattern(rf"^(0{{0,5}}[1-9][0-9]{{0,5}}(\.[0-9]{{1,6}})?|0{{1,6}}\.{_FRACTION_ABOVE_0})$"),
]
Share = Annotated[str, _pattern(r"^(0(\.[0-9]{1,3})?|1(\.0{1,3})?)$")]
# The OpenAPI generator drops a falsy bound (`ge=0`) of an optional field: say it again.
BackdateDays = Annotated[
    int, msgspec.Meta(ge=0, le=365, extra_json_schema={"extra": {"minimum": 0}})
]


# An origin as browsers send it: scheme, host (a name or an IPv4 address, lower case), and a
# port only when it is not the default (a default port is dropped when saved); no path, no
# trailing slash. The item keeps `$` (the document copies an item's decoder pattern): the
# settings API refuses the final newline Python's `$` lets through.
_PORT = (
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
)
_HOST = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
ORIGIN_PATTERN = f"^https?://{_HOST}{_PORT}$"
_ORIGIN_DESCRIPTION = "An exact origin, `scheme://host[:port]`: e.g. `https://shop.example`."
Origin = Annotated[
    str, msgspec.Meta(max_length=300, pattern=ORIGIN_PATTERN, description=_ORIGIN_DESCRIPTION)
]
_POINT_VALUE = "What one point is worth in `currency`, above 0 (`0.01`: 100 points = 1 unit)."
_SHARE = "The largest share of an order's price payable in points, 0 to 1."
_BACKDATE = "How many days before today (in `timezone`) a check-in may be dated; 0: today only."
_CORS = "Origins browsers may call the API from with this tenant's credentials, sorted."
MAX_CORS_ORIGINS = 20
CorsOrigins = Annotated[
    list[Origin],
    msgspec.Meta(
        max_length=MAX_CORS_ORIGINS,
        description="Origins browsers may call the API from (the member mall widget on the "
        "merchant's sites), at most 20; a default port is dropped, duplicates too.",
        # The OpenAPI generator does not carry an item's constraints: say them here.
        extra_json_schema={
            "extra": {
                "items": {
                    "type": "string",
                    "maxLength": 300,
                    "pattern": ORIGIN_PATTERN,
                    "description": _ORIGIN_DESCRIPTION,
                }
            }
        },
    ),
]


class ProgramSettings(msgspec.Struct):
    """`name`: the program's name (the merchant's, as given at signup);
    `point_value`: what one point is worth in `currency` (0.01: 100 points = 1 unit);
    `max_points_share`: the largest share of an order's price payable in points (0 to 1);
    `checkin_backdate_days`: how many days before today (in `timezone`) a check-in may be
    dated (0: today only); `cors_origins`: the origins browsers may call the API from with
    this tenant's credentials (sorted)."""

    name: Annotated[str, _d(_NAME)]
    timezone: Annotated[str, _d(_TIME_ZONE)]
    currency: Annotated[str, _d(_CURRENCY)]
    point_value: Annotated[str, _d(_POINT_VALUE)]
    max_points_share: Annotated[str, _d(_SHARE)]
    checkin_backdate_days: Annotated[int, _d(_BACKDATE)]
    cors_origins: Annotated[list[str], _d(_CORS)]
    updated_at: Annotated[datetime, _d("When the settings last changed.")]
    object: Annotated[str, _d("Always `settings`.")] = "settings"


class ProgramSettingsUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Annotated[Name, _d(_NAME)] | msgspec.UnsetType = msgspec.UNSET
    timezone: Annotated[TimeZone, _d(_TIME_ZONE)] | msgspec.UnsetType = msgspec.UNSET
    currency: Annotated[Currency, _d(_CURRENCY)] | msgspec.UnsetType = msgspec.UNSET
    point_value: Annotated[Rate, _d(_POINT_VALUE)] | msgspec.UnsetType = msgspec.UNSET
    max_points_share: Annotated[Share, _d(_SHARE)] | msgspec.UnsetType = msgspec.UNSET
    checkin_backdate_days: Annotated[BackdateDays, _d(_BACKDATE)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    cors_origins: CorsOrigins | msgspec.UnsetType = msgspec.UNSET
