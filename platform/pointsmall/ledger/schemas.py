from datetime import datetime
from typing import Annotated, Literal

import msgspec

from pointsmall.schemas import Name

MAX_POINTS = 2**53  # the largest integer every JSON client reads exactly

PointTypeKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
MemberId = Annotated[str, msgspec.Meta(max_length=40, pattern=r"^mem_[0-9a-z]{1,36}$")]
Points = Annotated[int, msgspec.Meta(ge=1, le=MAX_POINTS)]
SignedPoints = Annotated[int, msgspec.Meta(ge=-MAX_POINTS, le=MAX_POINTS)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]
Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]
Days = Annotated[int, msgspec.Meta(ge=0, le=36500)]


class EarnCreate(msgspec.Struct, forbid_unknown_fields=True):
    member_id: MemberId
    points: Points
    reason: Reason
    point_type: PointTypeKey = "points"
    reference: Reference | None = None


class SpendCreate(EarnCreate, forbid_unknown_fields=True):
    pass


class AdjustCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A staff correction: positive credits, negative debits; never zero."""

    member_id: MemberId
    points: SignedPoints
    reason: Reason
    point_type: PointTypeKey = "points"
    reference: Reference | None = None


class ReverseCreate(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason | None = None


class Transaction(msgspec.Struct):
    """A ledger transaction. `points` is the signed change to the member's points; for a
    `release` it is the pending points that became available (the total is unchanged)."""

    id: str
    kind: Literal["earn", "spend", "adjust", "reverse", "expire", "release", "clawback"]
    member_id: str
    point_type: str
    points: int
    reason: str | None
    reference: str | None
    reverses: str | None
    granted_by: str | None
    created_at: datetime
    object: str = "transaction"


class Expiring(msgspec.Struct):
    points: int
    expires_at: datetime


class PointBalance(msgspec.Struct):
    point_type: str
    available: int
    pending: int
    lifetime_earned: int
    expiring: list[Expiring]


class MemberBalance(msgspec.Struct):
    member_id: str
    tier: str | None
    balances: list[PointBalance]


ExpiryPolicy = Literal["never", "rolling", "fixed_date", "end_of_period"]
PendingPolicy = Literal["immediate", "days", "manual"]
Period = Literal["month", "quarter", "year"]


class PointTypeCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Expiry: `never`; `rolling` (expiry_days after earning); `fixed_date` (expiry_date);
    `end_of_period` (end of the expiry_period containing earning + expiry_days, in the
    tenant's time zone). Pending: `immediate`; `days` (pending_days); `manual` (until
    released through POST /v1/transactions/{id}/release)."""

    key: PointTypeKey
    name: Name
    expiry_policy: ExpiryPolicy = "never"
    expiry_days: Days | None = None
    expiry_date: datetime | None = None
    expiry_period: Period | None = None
    pending_policy: PendingPolicy = "immediate"
    pending_days: Days | None = None
    allow_negative: bool = False


class PointTypeOut(msgspec.Struct):
    key: str
    name: str
    expiry_policy: str
    expiry_days: int | None
    expiry_date: datetime | None
    expiry_period: str | None
    pending_policy: str
    pending_days: int | None
    allow_negative: bool
    created_at: datetime
    object: str = "point_type"
