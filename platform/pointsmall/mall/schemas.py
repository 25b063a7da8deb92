from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from pointsmall.ledger.schemas import MAX_POINTS, MemberId
from pointsmall.schemas import Name

ProductKind = Literal["physical", "virtual", "coupon", "service"]
ProductStatus = Literal["draft", "active", "archived"]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
Count = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Url = Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https?://[^\s\x00]+$")]
ProductId = Annotated[str, msgspec.Meta(max_length=40, pattern=r"^prod_[0-9a-z]{1,36}$")]


class ProductCreate(msgspec.Struct, forbid_unknown_fields=True):
    """`stock` null is unlimited; `tiers` null is open to every member; limits count
    quantities in orders that were not cancelled."""

    name: Name
    kind: ProductKind
    points_price: Annotated[int, msgspec.Meta(ge=1, le=MAX_POINTS)]
    description: Annotated[str, msgspec.Meta(max_length=5000, pattern=r"^[^\x00]*$")] | None = None
    category: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")] | None
    ) = None
    stock: Annotated[int, msgspec.Meta(ge=0, le=MAX_POINTS)] | None = None
    per_member_limit: Count | None = None
    per_period_limit: Count | None = None
    limit_period: Literal["day", "week", "month"] | None = None
    tiers: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]] | None = None
    available_from: AwareTime | None = None
    available_until: AwareTime | None = None
    images: Annotated[list[Url], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    status: ProductStatus = "active"
    # For kind `coupon`: each code's value (in `currency`) and how many days it stays valid.
    coupon_value: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,10}(\.[0-9]{1,4})?$")] | None = (
        None
    )
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | None = None
    coupon_valid_days: Annotated[int, msgspec.Meta(ge=1, le=3660)] | None = None


class ProductUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    points_price: Annotated[int, msgspec.Meta(ge=1, le=MAX_POINTS)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    stock: Annotated[int, msgspec.Meta(ge=0, le=MAX_POINTS)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    status: ProductStatus | msgspec.UnsetType = msgspec.UNSET


class Product(msgspec.Struct):
    id: str
    name: str
    kind: str
    points_price: int
    description: str | None
    category: str | None
    stock: int | None
    per_member_limit: int | None
    per_period_limit: int | None
    limit_period: str | None
    tiers: list[str] | None
    available_from: datetime | None
    available_until: datetime | None
    images: list[str]
    status: str
    created_at: datetime
    updated_at: datetime
    object: str = "product"


class OrderLineIn(msgspec.Struct, forbid_unknown_fields=True):
    product_id: ProductId
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1


class OrderCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Paid in points: `payment.points` must be the order's points total."""

    member_id: MemberId
    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=50)]
    payment: dict[str, Any] | None = None
    shipping_address: dict[str, Any] | None = None


class OrderLine(msgspec.Struct):
    product_id: str
    quantity: int
    points: int


class Order(msgspec.Struct):
    id: str
    member_id: str
    status: str
    points: int
    lines: list[OrderLine]
    spend_transaction: str | None
    created_at: datetime
    coupons: list[str] = msgspec.field(default_factory=list)
    object: str = "order"


class CouponOut(msgspec.Struct):
    code: str
    status: Literal["valid", "redeemed", "expired"]
    product_id: str
    member_id: str
    value: str | None
    currency: str | None
    expires_at: datetime
    redeemed_at: datetime | None
    object: str = "coupon"


class CouponRedeem(msgspec.Struct, forbid_unknown_fields=True):
    reference: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*$")] | None
    ) = None
