"""The mall's request and response bodies. Every field says what it is in one line, and
every constraint the server enforces is in the schema: where the OpenAPI generator would
drop one (a lower bound of 0, the constraints of a list's items), it is given by hand."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar.params import KwargDefinition

from pointsmall.ledger.schemas import MAX_POINTS, MemberId
from pointsmall.mall.money import Currency
from pointsmall.schemas import FLAT_OBJECT_SCHEMA, AttributeKey, Name


def exact(pattern: str) -> str:
    """The decoder's form of a pattern the document gives: Python's `$` also matches before
    a final newline (so `"1.5\\n"` passed `^...$`), ECMA-262's does not; `\\Z` is the
    end in Python."""
    return pattern.removesuffix("$") + r"\Z" if pattern.endswith("$") else pattern


def pattern(document: str, **constraints: Any) -> msgspec.Meta:
    """A string's pattern: `exact` for the decoder, as written for the document."""
    return msgspec.Meta(
        pattern=exact(document), extra_json_schema={"extra": {"pattern": document}}, **constraints
    )


def meta(
    description: str, *, openapi: dict[str, Any] | None = None, **constraints: Any
) -> msgspec.Meta:
    """A field's one-line description with its constraints. What the OpenAPI generator
    would drop is put in the schema by hand (`openapi`, attribute names of Litestar's
    Schema): a lower bound of 0 (a falsy bound is dropped), a dict's size; a pattern is
    made `exact` for the decoder."""
    extra = dict(openapi or {})
    if constraints.get("ge") == 0:
        extra["minimum"] = 0
    if "pattern" in constraints:
        extra["pattern"] = constraints["pattern"]
        constraints["pattern"] = exact(constraints["pattern"])
    return msgspec.Meta(
        description=description,
        extra_json_schema={"extra": extra} if extra else None,
        **constraints,
    )


_NO_NUL = r"^[^\x00]*$"
_KEY = r"^[a-z][a-z0-9_]{0,39}$"
# Character classes mean the same to Python's `re` (the decoder) and to ECMA-262 (the
# document's readers): no `\s`, whose sets differ (Python counts \x1c-\x1f as space).
_URL = r"^https?://[^\x00-\x20\x7f]+$"
# Printable ASCII: 1,000 codes of 200 characters stay well inside the 1 MiB body limit.
_CODE = r"^[ -~]{1,200}$"
# A list's items carry their constraints twice: msgspec's Meta (what the decoder enforces)
# and Litestar's KwargDefinition (the OpenAPI generator reads only that one inside a list).
_TierItem = Annotated[str, msgspec.Meta(pattern=exact(_KEY)), KwargDefinition(pattern=_KEY)]
_UrlItem = Annotated[
    str,
    msgspec.Meta(max_length=2000, pattern=exact(_URL)),
    KwargDefinition(max_length=2000, pattern=_URL),
]
_CodeItem = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=200, pattern=exact(_CODE)),
    KwargDefinition(min_length=1, max_length=200, pattern=_CODE),
]

ProductKind = Literal["physical", "virtual", "coupon", "service"]
ProductStatus = Literal["draft", "active", "archived"]
LimitPeriod = Literal["day", "week", "month"]
OrderStatus = Literal["pending_payment", "confirmed", "fulfilled", "cancelled", "refunded"]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
Count = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Url = Annotated[str, pattern(_URL, max_length=2000)]
ProductId = Annotated[str, pattern(r"^prod_[0-9a-z]{1,36}$", max_length=40)]
CategoryId = Annotated[str, pattern(r"^cat_[0-9a-z]{1,36}$", max_length=40)]
# An amount as a client writes it: up to 10 integer digits and 4 decimals; the decimals may
# not go beyond the currency's minor unit (409 `amount_precision`).
Amount = Annotated[str, pattern(r"^[0-9]{1,10}(\.[0-9]{1,4})?$")]
ProviderName = Annotated[str, pattern(r"^[a-z][a-z0-9_]{0,39}$")]
TierKey = Annotated[str, pattern(_KEY)]
TierKeys = Annotated[
    list[_TierItem],
    meta("Keys of existing tiers whose members may order it; null: every member.", max_length=50),
]
Images = Annotated[
    list[_UrlItem],
    meta("Image URLs (http or https), at most 20.", max_length=20),
]
Description = Annotated[str, pattern(_NO_NUL, max_length=5000)]
Position = Annotated[
    int, meta("Sort position among its siblings, 0 to 1,000,000.", ge=0, le=1_000_000)
]
Stock = Annotated[int, meta("Units in stock; null: unlimited.", ge=0, le=MAX_POINTS)]
ValidDays = Annotated[int, meta("Days an issued coupon stays valid, 1 to 3660.", ge=1, le=3660)]

_NAME = "The name shown to members (1 to 200 characters)."
_KIND = "physical, virtual (delivers an uploaded code), coupon (issues a code) or service."
_POINTS_PRICE = "The price in points, 1 to 2^53."
_CASH_PRICE = (
    "A cash part paid beside the points, in the tenant's currency, at most its minor-unit "
    "digits; null: points only."
)
_CURRENCY = (
    "ISO 4217 currency of `cash_price` and `coupon_value`: the tenant's by default, and it "
    "must be the tenant's when there is a cash part."
)
_CATEGORY = "The id of an existing category (`cat_…`), or null."
_PER_MEMBER = "The most one member may order, over all time (orders not cancelled); null: no limit."
_PER_PERIOD = "The most one member may order per `limit_period`; null: no limit."
_LIMIT_PERIOD = "The period of `per_period_limit` (tenant's time zone); set with it."
_FROM = "Orderable from this time (RFC 3339 with an offset); null: already."
_UNTIL = "Orderable until this time (exclusive); null: no end."
_STATUS = "draft and archived products cannot be ordered."
_COUPON_VALUE = "A coupon's value in `currency` (kind coupon only); null: none stated."
_COUPON_DAYS = "Days an issued coupon stays valid (kind coupon only, required there)."


class CategoryCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[Name, meta(_NAME)]
    parent_id: Annotated[CategoryId, meta("The parent category; null: top level.")] | None = None
    position: Position = 0


class CategoryUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Only the fields sent change. An unknown parent is 404 `unknown_category`; one that
    would put the category under itself is 409 `category_cycle`."""

    name: Annotated[Name, meta(_NAME)] | msgspec.UnsetType = msgspec.UNSET
    parent_id: (
        Annotated[CategoryId, meta("The parent category; null: top level.")]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    position: Position | msgspec.UnsetType = msgspec.UNSET


class Category(msgspec.Struct):
    id: Annotated[str, meta("The category's id (`cat_…`).")]
    name: Annotated[str, meta("Its name.")]
    parent_id: Annotated[str | None, meta("The parent category's id; null: top level.")]
    position: Annotated[int, meta("Sort position among its siblings.")]
    created_at: Annotated[datetime, meta("When it was created (UTC).")]
    updated_at: Annotated[datetime, meta("When it last changed (UTC).")]
    object: Annotated[Literal["category"], meta("Always `category`.")]


class ProductCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A product. By kind: a virtual product's stock is its uploaded codes (no `stock`); a
    coupon needs `coupon_valid_days`, and only coupons take `coupon_value` and
    `coupon_valid_days`; `per_period_limit` and `limit_period` go together (422
    otherwise). Unknown `category` or `tiers`: 404. A cash part outside the tenant's
    currency, or more decimals than the currency has: 409."""

    name: Annotated[Name, meta(_NAME)]
    kind: Annotated[ProductKind, meta(_KIND)]
    points_price: Annotated[int, meta(_POINTS_PRICE, ge=1, le=MAX_POINTS)]
    description: (
        Annotated[Description, meta("Shown to members, at most 5000 characters.")] | None
    ) = None
    category: Annotated[CategoryId, meta(_CATEGORY)] | None = None
    cash_price: Annotated[Amount, meta(_CASH_PRICE)] | None = None
    stock: Stock | None = None
    per_member_limit: Annotated[Count, meta(_PER_MEMBER)] | None = None
    per_period_limit: Annotated[Count, meta(_PER_PERIOD)] | None = None
    limit_period: Annotated[LimitPeriod, meta(_LIMIT_PERIOD)] | None = None
    tiers: TierKeys | None = None
    available_from: Annotated[AwareTime, meta(_FROM)] | None = None
    available_until: Annotated[AwareTime, meta(_UNTIL)] | None = None
    images: Images = msgspec.field(default_factory=list)
    status: Annotated[ProductStatus, meta(_STATUS)] = "active"
    coupon_value: Annotated[Amount, meta(_COUPON_VALUE)] | None = None
    currency: Annotated[Currency, meta(_CURRENCY)] | None = None
    coupon_valid_days: ValidDays | None = None


def _given(field: str) -> dict[str, Any]:
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


def _absent(*fields: str) -> dict[str, Any]:
    return {"properties": {field: {"type": "null"} for field in fields}}


# What ProductCreate's fields cannot say each on its own (JSON Schema 2020-12 conditionals;
# the server refuses the same bodies with 422, services.create_product).
PRODUCT_CREATE_RULES: list[dict[str, Any]] = [
    {"if": {"properties": {"kind": {"const": "virtual"}}}, "then": _absent("stock")},
    {
        "if": {"properties": {"kind": {"const": "coupon"}}},
        "then": _given("coupon_valid_days"),
        "else": _absent("coupon_value", "coupon_valid_days"),
    },
    {"if": _given("per_period_limit"), "then": _given("limit_period")},
    {"if": _given("limit_period"), "then": _given("per_period_limit")},
]


class ProductUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Only the fields sent change; null clears an optional one. `kind` cannot change
    (create another product). Checked against the product as it will be: `stock` on a
    virtual product, coupon fields on another kind, a `per_period_limit` without
    `limit_period` (or the reverse), a cash part outside the tenant's currency, more
    decimals than the currency has: 409. Unknown `category` or `tiers`: 404."""

    name: Annotated[Name, meta(_NAME)] | msgspec.UnsetType = msgspec.UNSET
    points_price: Annotated[int, meta(_POINTS_PRICE, ge=1, le=MAX_POINTS)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    description: (
        Annotated[Description, meta("Shown to members, at most 5000 characters.")]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    category: Annotated[CategoryId, meta(_CATEGORY)] | msgspec.UnsetType | None = msgspec.UNSET
    cash_price: Annotated[Amount, meta(_CASH_PRICE)] | msgspec.UnsetType | None = msgspec.UNSET
    stock: Stock | msgspec.UnsetType | None = msgspec.UNSET
    per_member_limit: Annotated[Count, meta(_PER_MEMBER)] | msgspec.UnsetType | None = msgspec.UNSET
    per_period_limit: Annotated[Count, meta(_PER_PERIOD)] | msgspec.UnsetType | None = msgspec.UNSET
    limit_period: Annotated[LimitPeriod, meta(_LIMIT_PERIOD)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    tiers: TierKeys | msgspec.UnsetType | None = msgspec.UNSET
    available_from: Annotated[AwareTime, meta(_FROM)] | msgspec.UnsetType | None = msgspec.UNSET
    available_until: Annotated[AwareTime, meta(_UNTIL)] | msgspec.UnsetType | None = msgspec.UNSET
    images: Images | msgspec.UnsetType = msgspec.UNSET
    status: Annotated[ProductStatus, meta(_STATUS)] | msgspec.UnsetType = msgspec.UNSET
    coupon_value: Annotated[Amount, meta(_COUPON_VALUE)] | msgspec.UnsetType | None = msgspec.UNSET
    currency: Annotated[Currency, meta(_CURRENCY)] | msgspec.UnsetType | None = msgspec.UNSET
    coupon_valid_days: ValidDays | msgspec.UnsetType = msgspec.UNSET


class Product(msgspec.Struct):
    id: Annotated[str, meta("The product's id (`prod_…`).")]
    name: Annotated[str, meta("The name shown to members.")]
    kind: Annotated[ProductKind, meta(_KIND)]
    points_price: Annotated[int, meta("The price in points.")]
    cash_price: Annotated[
        str | None, meta("The cash part, with the currency's minor-unit digits; null: none.")
    ]
    currency: Annotated[str | None, meta("ISO 4217 currency of cash_price and coupon_value.")]
    description: Annotated[str | None, meta("Shown to members.")]
    category: Annotated[str | None, meta("The category's id, or null.")]
    stock: Annotated[
        int | None, meta("Units left (a virtual product: its unused codes); null: unlimited.")
    ]
    per_member_limit: Annotated[int | None, meta(_PER_MEMBER)]
    per_period_limit: Annotated[int | None, meta(_PER_PERIOD)]
    limit_period: Annotated[LimitPeriod | None, meta("The period of per_period_limit.")]
    tiers: Annotated[list[str] | None, meta("Tiers whose members may order it; null: everyone.")]
    available_from: Annotated[datetime | None, meta("Orderable from (UTC); null: already.")]
    available_until: Annotated[
        datetime | None, meta("Orderable until (UTC, exclusive); null: no end.")
    ]
    images: Annotated[list[str], meta("Image URLs.")]
    status: Annotated[ProductStatus, meta(_STATUS)]
    coupon_value: Annotated[
        str | None, meta("A coupon's value, with the currency's minor-unit digits; else null.")
    ]
    coupon_valid_days: Annotated[int | None, meta("Days a coupon stays valid; else null.")]
    created_at: Annotated[datetime, meta("When it was created (UTC).")]
    updated_at: Annotated[datetime, meta("When it last changed (UTC).")]
    object: Annotated[Literal["product"], meta("Always `product`.")]


class OrderLineIn(msgspec.Struct, forbid_unknown_fields=True):
    product_id: Annotated[ProductId, meta("The product (`prod_…`); unknown: 404.")]
    quantity: Annotated[int, meta("Units, 1 to 1000.", ge=1, le=1000)] = 1


class Money(msgspec.Struct, forbid_unknown_fields=True):
    amount: Annotated[Amount, meta("A decimal amount, e.g. `9.90`.")]
    currency: Annotated[Currency, meta("ISO 4217 currency code.")]


class PaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    """`points`: how many of the order's points to pay with points (default: as many as the
    tenant's share allows); the rest is cash at the tenant's rate. `cash`, when given, is
    the amount the client expects to collect; another figure is 409 `cash_mismatch`."""

    points: (
        Annotated[
            int,
            meta("Points to pay with (default: the most the share allows).", ge=0, le=MAX_POINTS),
        ]
        | None
    ) = None
    cash: Annotated[Money, meta("The cash the client expects to collect (checked).")] | None = None
    provider: Annotated[ProviderName, meta("An installed payment provider (default `manual`).")] = (
        "manual"
    )
    return_url: Annotated[Url, meta("Where the provider sends the member after paying.")] | None = (
        None
    )


# The shipping address is flat, like Stripe metadata (pointsmall.schemas.Attributes): the
# document says so in full (the generator leaves out the keys' pattern and the values'
# bounds).
ADDRESS_SCHEMA = FLAT_OBJECT_SCHEMA
# A NUL in a value is refused by the body check that runs after decoding (422 naming the
# key), so the decoder's type leaves it to that check.
Address = Annotated[
    dict[AttributeKey, Annotated[str, msgspec.Meta(max_length=500)] | int | float | bool | None],
    msgspec.Meta(max_length=50),
]
_ADDRESS = (
    "Where to ship, kept and shown as sent: a flat object of at most 50 keys of 1 to 40 "
    "characters (letters, digits, `_ . : -`), values strings of at most 500 characters, "
    'numbers, booleans or null; e.g. `{"line1": "1 Harbour Rd", "city": "Hong Kong"}`.'
)


class OrderCreate(msgspec.Struct, forbid_unknown_fields=True):
    member_id: Annotated[MemberId, meta("The member redeeming (`mem_…`); unknown: 404.")]
    lines: Annotated[
        list[OrderLineIn], meta("What is ordered, 1 to 50 lines.", min_length=1, max_length=50)
    ]
    payment: Annotated[PaymentIn, meta("How the order is paid (default: points first).")] | None = (
        None
    )
    shipping_address: (
        Annotated[
            Address,
            msgspec.Meta(
                description=_ADDRESS,
                extra_json_schema={"extra": {"oneOf": [ADDRESS_SCHEMA, {"type": "null"}]}},
            ),
        ]
        | None
    ) = None


class OrderLine(msgspec.Struct):
    product_id: Annotated[str, meta("The product's id.")]
    quantity: Annotated[int, meta("Units ordered.")]
    points: Annotated[
        int, meta("The line's points price (unit price times quantity), before the split.")
    ]
    cash: Annotated[
        str | None, meta("The line's own cash part, in the order's currency; else null.")
    ]


class PaymentOut(msgspec.Struct):
    provider: Annotated[str, meta("The payment provider.")]
    status: Annotated[
        Literal["pending", "succeeded", "failed", "refunded"], meta("The payment's state.")
    ]
    payment_id: Annotated[str | None, meta("The provider's payment id (confirm-payment takes it).")]
    redirect_url: Annotated[str | None, meta("Where the member pays, if the provider has a page.")]
    expires_at: Annotated[datetime | None, meta("When the payment window closes (UTC).")]
    refund_id: Annotated[str | None, meta("The provider's refund id, once refunded.")]


class ConfirmPayment(msgspec.Struct, forbid_unknown_fields=True):
    payment_id: Annotated[
        str,
        meta("The order's `payment.payment_id`.", min_length=1, max_length=200, pattern=_NO_NUL),
    ]


class RefundIn(msgspec.Struct, forbid_unknown_fields=True):
    restock: Annotated[
        bool, meta("Put the items back in stock (a returned parcel); codes never go back.")
    ] = False


class CodesIn(msgspec.Struct, forbid_unknown_fields=True):
    codes: Annotated[
        list[_CodeItem],
        meta(
            "Codes to add: 1 to 1,000, each 1 to 200 printable ASCII characters; codes the"
            " product already has are skipped.",
            min_length=1,
            max_length=1000,
        ),
    ]


class CodesAdded(msgspec.Struct):
    product_id: Annotated[str, meta("The virtual product.")]
    added: Annotated[int, meta("Codes that were new.")]
    stock: Annotated[int, meta("Its unused codes now.")]


class VirtualCodeOut(msgspec.Struct):
    code: Annotated[str, meta("The code.")]
    product_id: Annotated[str, meta("The virtual product it belongs to.")]
    status: Annotated[
        Literal["delivered", "void"], meta("void: the order was cancelled or refunded.")
    ]


class Order(msgspec.Struct):
    """`points` is what the member paid in points, `cash` what is paid in cash (null: none);
    `points_total` is the points price before the split. `codes` are the virtual codes the
    member may use; `virtual_codes` every code the member was shown, with its status."""

    id: Annotated[str, meta("The order's id (`ord_…`).")]
    member_id: Annotated[str, meta("The member who ordered.")]
    status: Annotated[
        OrderStatus, meta("pending_payment → confirmed → fulfilled; cancelled; refunded.")
    ]
    points: Annotated[int, meta("Points paid (debited); the rest of points_total is paid in cash.")]
    lines: Annotated[list[OrderLine], meta("What was ordered.")]
    spend_transaction: Annotated[
        str | None, meta("The ledger's spend transaction; null: no points.")
    ]
    created_at: Annotated[datetime, meta("When it was placed (UTC).")]
    coupons: Annotated[list[str], meta("Coupon codes issued by it.")]
    codes: Annotated[list[str], meta("Virtual codes the member may use.")]
    virtual_codes: Annotated[
        list[VirtualCodeOut], meta("Every virtual code shown, with its status.")
    ]
    cash: Annotated[
        str | None, meta("The cash part, with the currency's minor-unit digits; null: none.")
    ]
    currency: Annotated[str | None, meta("ISO 4217 currency of the cash part; null: none.")]
    points_total: Annotated[int, meta("The points price of all lines, before the split.")]
    payment: Annotated[PaymentOut | None, meta("The cash payment; null: paid in points only.")]
    status_reason: Annotated[
        Literal["requested", "payment_timeout", "payment_failed"] | None,
        meta("Why it was cancelled; else null."),
    ]
    refund_transaction: Annotated[
        str | None, meta("The ledger's reversal of the spend, once given back.")
    ]
    shipping_address: Annotated[dict[str, Any] | None, meta("Where to ship, as sent; null: none.")]
    object: Annotated[Literal["order"], meta("Always `order`.")]


class CouponOut(msgspec.Struct):
    code: Annotated[str, meta("The coupon's code (20 characters).")]
    status: Annotated[
        Literal["valid", "redeemed", "expired", "void"],
        meta("void: its order was cancelled or refunded."),
    ]
    product_id: Annotated[str, meta("The coupon product that issued it.")]
    member_id: Annotated[str, meta("The member it was issued to.")]
    value: Annotated[
        str | None, meta("Its value, with the currency's minor-unit digits; null: none stated.")
    ]
    currency: Annotated[str | None, meta("ISO 4217 currency of value.")]
    expires_at: Annotated[datetime, meta("When it expires (UTC).")]
    redeemed_at: Annotated[datetime | None, meta("When it was redeemed (UTC); null: not yet.")]
    object: Annotated[Literal["coupon"], meta("Always `coupon`.")]


class CouponRedeem(msgspec.Struct, forbid_unknown_fields=True):
    reference: (
        Annotated[
            str,
            meta(
                "The merchant's reference for the sale (1 to 255 characters).",
                min_length=1,
                max_length=255,
                pattern=_NO_NUL,
            ),
        ]
        | None
    ) = None
