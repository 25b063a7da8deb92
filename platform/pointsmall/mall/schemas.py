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
CategoryId = Annotated[str, msgspec.Meta(max_length=40, pattern=r"^cat_[0-9a-z]{1,36}$")]
Amount = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,10}(\.[0-9]{1,4})?$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
ProviderName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
TierKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class CategoryCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    parent_id: CategoryId | None = None
    position: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0


class CategoryUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    parent_id: CategoryId | msgspec.UnsetType | None = msgspec.UNSET
    position: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | msgspec.UnsetType = msgspec.UNSET


class Category(msgspec.Struct):
    id: str
    name: str
    parent_id: str | None
    position: int
    created_at: datetime
    updated_at: datetime
    object: str = "category"


class ProductCreate(msgspec.Struct, forbid_unknown_fields=True):
    """`stock` null is unlimited; `tiers` null is open to every member; limits count
    quantities in orders that were not cancelled."""

    name: Name
    kind: ProductKind
    points_price: Annotated[int, msgspec.Meta(ge=1, le=MAX_POINTS)]
    description: Annotated[str, msgspec.Meta(max_length=5000, pattern=r"^[^\x00]*$")] | None = None
    category: CategoryId | None = None
    # A cash part paid beside the points (points + cash products), in the tenant's currency.
    cash_price: Amount | None = None
    stock: Annotated[int, msgspec.Meta(ge=0, le=MAX_POINTS)] | None = None
    per_member_limit: Count | None = None
    per_period_limit: Count | None = None
    limit_period: Literal["day", "week", "month"] | None = None
    tiers: list[TierKey] | None = None  # keys of existing tiers (422 `unknown_tier`)
    available_from: AwareTime | None = None
    available_until: AwareTime | None = None
    images: Annotated[list[Url], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    status: ProductStatus = "active"
    # For kind `coupon`: each code's value (in `currency`) and how many days it stays valid.
    coupon_value: Amount | None = None
    currency: Currency | None = None
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
    tiers: list[TierKey] | msgspec.UnsetType | None = msgspec.UNSET


class Product(msgspec.Struct):
    id: str
    name: str
    kind: str
    points_price: int
    cash_price: str | None
    currency: str | None
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


class Money(msgspec.Struct, forbid_unknown_fields=True):
    amount: Amount
    currency: Currency


class PaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    """`points`: how many of the order's points to pay with points (default: as many as the
    tenant's share allows); the rest is cash at the tenant's rate. `cash`, when given, is
    the amount the client expects to collect; a different figure is a 422."""

    points: Annotated[int, msgspec.Meta(ge=0, le=MAX_POINTS)] | None = None
    cash: Money | None = None
    provider: ProviderName = "manual"
    return_url: Url | None = None


class OrderCreate(msgspec.Struct, forbid_unknown_fields=True):
    member_id: MemberId
    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=50)]
    payment: PaymentIn | None = None
    shipping_address: dict[str, Any] | None = None


class OrderLine(msgspec.Struct):
    product_id: str
    quantity: int
    points: int  # the line's points price (before any points were paid in cash instead)
    cash: str | None = None  # the line's own cash part


class PaymentOut(msgspec.Struct):
    provider: str
    status: str  # pending | succeeded | failed | refunded
    payment_id: str | None = None
    redirect_url: str | None = None
    expires_at: datetime | None = None
    refund_id: str | None = None


class ConfirmPayment(msgspec.Struct, forbid_unknown_fields=True):
    payment_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class RefundIn(msgspec.Struct, forbid_unknown_fields=True):
    """`restock`: put the items back in stock (a returned parcel); virtual codes never go back."""

    restock: bool = False


class CodesIn(msgspec.Struct, forbid_unknown_fields=True):
    codes: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00]+$")]],
        msgspec.Meta(min_length=1, max_length=10_000),
    ]


class CodesAdded(msgspec.Struct):
    product_id: str
    added: int
    stock: int


class VirtualCodeOut(msgspec.Struct):
    code: str
    product_id: str
    status: Literal["delivered", "void"]  # void: the order was cancelled or refunded


class Order(msgspec.Struct):
    """`points` is what the member paid in points, `cash` what is paid in cash (None: none);
    `points_total` is the points price before the split. `codes` are the virtual
    codes the member may use; `virtual_codes` every code the member was shown, with its
    status (after a refund: `void`)."""

    id: str
    member_id: str
    status: str
    points: int
    lines: list[OrderLine]
    spend_transaction: str | None
    created_at: datetime
    coupons: list[str] = msgspec.field(default_factory=list)
    codes: list[str] = msgspec.field(default_factory=list)
    virtual_codes: list[VirtualCodeOut] = msgspec.field(default_factory=list)
    cash: str | None = None
    currency: str | None = None
    points_total: int = 0
    payment: PaymentOut | None = None
    status_reason: str | None = None
    refund_transaction: str | None = None
    object: str = "order"


class CouponOut(msgspec.Struct):
    code: str
    status: Literal["valid", "redeemed", "expired", "void"]  # void: its order was refunded
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
