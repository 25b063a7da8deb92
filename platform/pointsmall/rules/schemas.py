from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from pointsmall.ledger.schemas import MAX_POINTS, MemberId, PointTypeKey, Transaction
from pointsmall.schemas import ExternalId, Name

Trigger = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(order\.paid|order\.refunded|member\.signed_up|referral\.completed"
        r"|review\.created|checkin|custom\.[a-z0-9_.]{1,50})$"
    ),
]
Condition = Annotated[str, msgspec.Meta(min_length=1, max_length=4000, pattern=r"^[^\x00]*$")]
Cap = Annotated[int, msgspec.Meta(ge=0, le=MAX_POINTS)]
# Times must say their offset: a naive time has no meaning across time zones.
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
FieldPath = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
]


class FixedEffect(msgspec.Struct, tag="fixed", tag_field="kind", forbid_unknown_fields=True):
    points: Annotated[int, msgspec.Meta(ge=1, le=MAX_POINTS)]


class PerUnitEffect(msgspec.Struct, tag="per_unit", tag_field="kind", forbid_unknown_fields=True):
    """`points_per_unit` points for every unit of the number at `field` in the event's data
    (for example 1 point per CNY of `total`), rounded by `rounding`."""

    field: FieldPath
    points_per_unit: Decimal  # > 0 and <= 1,000,000 (checked when saved)
    rounding: Literal["floor", "round", "ceil"] = "floor"


class PerItemEffect(msgspec.Struct, tag="per_item", tag_field="kind", forbid_unknown_fields=True):
    """`points_per_unit` points per unit of money of each line in `data.items` whose `sku`
    or `category` matches (give one or both): sum of price x quantity x points_per_unit."""

    points_per_unit: Decimal
    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    rounding: Literal["floor", "round", "ceil"] = "floor"


class MultiplierEffect(
    msgspec.Struct, tag="multiplier", tag_field="kind", forbid_unknown_fields=True
):
    """A campaign: the points the other (stackable) rules gave this event, times `factor`;
    this rule credits the extra part, `(factor - 1) x base`, as its own bonus."""

    factor: Decimal  # > 1 and <= 100 (checked when saved)


Effect = FixedEffect | PerUnitEffect | PerItemEffect | MultiplierEffect


class Caps(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Per member per local day/week/month and in all; `budget` is the rule's total."""

    per_member_day: Cap | None = None
    per_member_week: Cap | None = None
    per_member_month: Cap | None = None
    per_member_lifetime: Cap | None = None
    budget: Cap | None = None


DayOfWeek = Annotated[int, msgspec.Meta(ge=1, le=7)]  # ISO: Monday 1 .. Sunday 7
Hour = Annotated[int, msgspec.Meta(ge=0, le=24)]


class Schedule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """When the rule may fire, judged at the event's `occurred_at` in the tenant's time zone.
    `ends_at` is inclusive; `hours` is [from, to) in local hours."""

    starts_at: AwareTime | None = None
    ends_at: AwareTime | None = None
    days_of_week: list[DayOfWeek] | None = None
    hours: Annotated[list[Hour], msgspec.Meta(min_length=2, max_length=2)] | None = None


class RuleCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    trigger: Trigger
    effect: Effect
    condition: Condition = "true"
    point_type: PointTypeKey = "points"
    caps: Caps = msgspec.field(default_factory=Caps)
    schedule: Schedule = msgspec.field(default_factory=Schedule)
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    stacking: Literal["stackable", "exclusive"] = "stackable"
    status: Literal["active", "inactive"] = "active"


class RuleUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Changing anything but `name` or `status` makes a new version."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    effect: Effect | msgspec.UnsetType = msgspec.UNSET
    condition: Condition | msgspec.UnsetType = msgspec.UNSET
    point_type: PointTypeKey | msgspec.UnsetType = msgspec.UNSET
    caps: Caps | msgspec.UnsetType = msgspec.UNSET
    schedule: Schedule | msgspec.UnsetType = msgspec.UNSET
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] | msgspec.UnsetType = msgspec.UNSET
    stacking: Literal["stackable", "exclusive"] | msgspec.UnsetType = msgspec.UNSET
    status: Literal["active", "inactive"] | msgspec.UnsetType = msgspec.UNSET


class RuleOut(msgspec.Struct):
    id: str
    version_id: str
    version: int
    name: str
    status: str
    trigger: str
    condition: str
    effect: Effect
    point_type: str
    caps: Caps
    schedule: Schedule
    priority: int
    stacking: str
    created_at: datetime
    updated_at: datetime
    object: str = "rule"


EventType = Trigger


class EventCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Give `member_id` or `member_external_id`. `order.*` events need `data.order_id` (a
    string of 1 to 128 characters or an integer), which deduplicates them; others are
    deduplicated by the Idempotency-Key header. `occurred_at` may be at most 5 minutes ahead
    (422 `occurred_at_in_future`) and no earlier than 1970."""

    type: EventType
    occurred_at: AwareTime
    member_id: MemberId | None = None
    member_external_id: ExternalId | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Verdict(msgspec.Struct):
    """What one rule made of an event, and why."""

    rule_id: str
    version_id: str
    fired: bool
    points: int
    reason: (
        str  # fired | condition_false | outside_schedule | cap_reached | budget_spent | error: …
    )


class EventOut(msgspec.Struct):
    id: str
    type: str
    member_id: str
    occurred_at: datetime
    transactions: list[Transaction]
    verdicts: list[Verdict]
    object: str = "event"


class SimulateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """An event to judge without writing; `draft` judges it against one rule not saved."""

    event: EventCreate
    draft: RuleCreate | None = None


class SimulateOut(msgspec.Struct):
    member_id: str
    points: int
    verdicts: list[Verdict]


class CheckInCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A daily check-in; `occurred_at` defaults to now. Once per member per local day, for
    today or up to the settings' `checkin_backdate_days` before (422 `checkin_too_old`)."""

    member_id: MemberId | None = None
    member_external_id: ExternalId | None = None
    occurred_at: AwareTime | None = None


TierKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class TierCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Members reach the tier when their `basis` (points granted by rules, or money spent)
    within the window reaches `threshold`; they keep it while they requalify, plus
    `retention_days` of grace after a review they fail. `earn_multiplier` scales what
    rules grant them (campaign multipliers apply on top)."""

    key: TierKey
    name: Name
    threshold: Annotated[int, msgspec.Meta(ge=0, le=MAX_POINTS)]
    basis: Literal["points", "spend"] = "points"
    window_kind: Literal["rolling_days", "calendar_year"] = "rolling_days"
    window_days: Annotated[int, msgspec.Meta(ge=1, le=3660)] | None = 365
    earn_multiplier: Annotated[
        str, msgspec.Meta(pattern=r"^(100(\.0+)?|[1-9][0-9]?(\.[0-9]{1,3})?)$")
    ] = "1"
    retention_days: Annotated[int, msgspec.Meta(ge=0, le=3660)] = 0


class TierOut(msgspec.Struct):
    key: str
    name: str
    threshold: int
    basis: str
    window_kind: str
    window_days: int | None
    earn_multiplier: str
    retention_days: int
    object: str = "tier"


class TierChangeOut(msgspec.Struct):
    from_tier: str | None
    to_tier: str | None
    at: datetime
    reason: str


class BacktestRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Replay the stored events of [`from`, `to`) against a draft rule, writing nothing."""

    draft: RuleCreate
    start: AwareTime = msgspec.field(name="from")
    end: AwareTime = msgspec.field(name="to")


class BacktestDay(msgspec.Struct):
    date: str
    events: int
    fired: int
    points: int
    liability: str  # points x the tenant's point value, in its currency


class BacktestOut(msgspec.Struct):
    rule: str
    currency: str
    days: list[BacktestDay]
    events: int
    points: int
    liability: str
    truncated: bool
