from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from pointsmall.ledger import document
from pointsmall.ledger.schemas import (
    MAX_POINTS,
    SINCE_1970,
    AwareTime,
    MemberId,
    PointTypeKey,
    Transaction,
    meta,
)
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
FieldPath = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
]


def canonical(value: Decimal | str) -> str:
    """A decimal's one written form: no exponent, no trailing zeros (`"1.5"`, `"2"`)."""
    return format(Decimal(value).normalize(), "f")


# Decimal strings, checked by pattern (a JSON number, NaN or an exponent is refused), read
# as any number of decimals and written back in `canonical` form.
UnitRate = Annotated[
    str,
    msgspec.Meta(
        max_length=40,
        pattern=r"^(0\.[0-9]*[1-9][0-9]*|[1-9][0-9]{0,5}(\.[0-9]+)?|1000000(\.0+)?)$",
    ),
]
Factor = Annotated[
    str,
    msgspec.Meta(
        max_length=40,
        pattern=r"^(1\.[0-9]*[1-9][0-9]*|[2-9](\.[0-9]+)?|[1-9][0-9](\.[0-9]+)?|100(\.0+)?)$",
    ),
]
TierMultiplier = Annotated[
    str, msgspec.Meta(pattern=r"^(100(\.0{1,3})?|[1-9][0-9]?(\.[0-9]{1,3})?)$")
]

_RATE = (
    "Points per unit, a decimal string above 0 and at most 1000000 (answered in canonical "
    'form: "1.50" is "1.5").'
)
_ROUNDING = "How a fractional result becomes whole points."


class FixedEffect(msgspec.Struct, tag="fixed", tag_field="kind", forbid_unknown_fields=True):
    """A fixed number of points."""

    points: Annotated[int, meta("Points credited when the rule fires.", ge=1, le=MAX_POINTS)]


class PerUnitEffect(msgspec.Struct, tag="per_unit", tag_field="kind", forbid_unknown_fields=True):
    """`points_per_unit` points for every unit of the number at `field` in the event's data
    (for example 1 point per CNY of `total`), rounded by `rounding`."""

    field: Annotated[FieldPath, meta("A dotted path into the event's `data`, e.g. `total`.")]
    points_per_unit: Annotated[UnitRate, meta(_RATE)]
    rounding: Annotated[Literal["floor", "round", "ceil"], meta(_ROUNDING)] = "floor"


class PerItemEffect(msgspec.Struct, tag="per_item", tag_field="kind", forbid_unknown_fields=True):
    """`points_per_unit` points per unit of money of each line in `data.items` whose `sku`
    or `category` matches (give one or both; neither is a 422): sum of price x quantity x
    points_per_unit."""

    points_per_unit: Annotated[UnitRate, meta(_RATE)]
    sku: (
        Annotated[str, meta("Lines with this `sku` count.", min_length=1, max_length=100)] | None
    ) = None
    category: (
        Annotated[str, meta("Lines in this `category` count.", min_length=1, max_length=100)] | None
    ) = None
    rounding: Annotated[Literal["floor", "round", "ceil"], meta(_ROUNDING)] = "floor"


class MultiplierEffect(
    msgspec.Struct, tag="multiplier", tag_field="kind", forbid_unknown_fields=True
):
    """A campaign: the points the other (stackable) rules gave this event, times `factor`;
    this rule credits the extra part, `(factor - 1) x base`, as its own bonus."""

    factor: Annotated[
        Factor,
        meta(
            'A decimal string above 1 and at most 100 (answered in canonical form: "1.50" '
            'is "1.5").'
        ),
    ]


Effect = FixedEffect | PerUnitEffect | PerItemEffect | MultiplierEffect


class Caps(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Per member per local day/week/month and in all; `budget` is the rule's total."""

    per_member_day: (
        Annotated[Cap, meta("At most this many points per member per local day.", minimum=0)] | None
    ) = None
    per_member_week: (
        Annotated[Cap, meta("At most this many per member per local ISO week.", minimum=0)] | None
    ) = None
    per_member_month: (
        Annotated[Cap, meta("At most this many per member per local month.", minimum=0)] | None
    ) = None
    per_member_lifetime: (
        Annotated[Cap, meta("At most this many per member in all.", minimum=0)] | None
    ) = None
    budget: (
        Annotated[Cap, meta("At most this many points in all, to all members.", minimum=0)] | None
    ) = None


DayOfWeek = Literal[1, 2, 3, 4, 5, 6, 7]  # ISO: Monday 1 .. Sunday 7
Hour = Literal[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24
]


class Schedule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """When the rule may fire, judged at the event's `occurred_at` in the tenant's time zone.
    `ends_at` is inclusive; `hours` is [from, to) in local hours."""

    starts_at: Annotated[AwareTime, meta("Not before this instant (answered in UTC).")] | None = (
        None
    )
    ends_at: (
        Annotated[AwareTime, meta("Not after this instant, inclusive (answered in UTC).")] | None
    ) = None
    days_of_week: (
        Annotated[
            list[DayOfWeek],
            meta("Local ISO days of the week it may fire on: Monday 1 to Sunday 7.", max_length=7),
        ]
        | None
    ) = None
    hours: (
        Annotated[
            list[Hour],
            meta(
                "Local hours [from, to): `[9, 18]` is 09:00 to 17:59.", min_length=2, max_length=2
            ),
        ]
        | None
    ) = None


_NAME = "The rule's name, shown in credits' reasons."
_TRIGGER = "The event type the rule judges: order.paid, checkin, custom.<name>, …"
_CONDITION = "A CEL expression over `event`, `member` and `now`; compiled when saved."
_POINT_TYPE = "The point type the rule credits."
_PRIORITY = "Base rules are judged highest first (-1000 to 1000)."
_STACKING = "`exclusive`: a base rule that fires stops the base rules after it."
_STATUS = "Only `active` rules judge events."
Priority = Annotated[int, msgspec.Meta(ge=-1000, le=1000)]
Stacking = Literal["stackable", "exclusive"]
RuleStatus = Literal["active", "inactive"]


class RuleCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A condition that does not compile or type-check, or a per_item effect with neither
    sku nor category, is a 422."""

    name: Annotated[Name, meta(_NAME)]
    trigger: Annotated[Trigger, meta(_TRIGGER)]
    effect: Annotated[Effect, meta("What the rule credits when it fires.")]
    condition: Annotated[Condition, meta(_CONDITION)] = "true"
    point_type: Annotated[PointTypeKey, meta(_POINT_TYPE)] = "points"
    caps: Annotated[Caps, meta("Limits on what the rule gives.")] = msgspec.field(
        default_factory=Caps
    )
    schedule: Annotated[Schedule, meta("When the rule may fire.")] = msgspec.field(
        default_factory=Schedule
    )
    priority: Annotated[Priority, meta(_PRIORITY)] = 0
    stacking: Annotated[Stacking, meta(_STACKING)] = "stackable"
    status: Annotated[RuleStatus, meta(_STATUS)] = "active"


class RuleUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Changing anything but `name` or `status` makes a new version."""

    name: Annotated[Name, meta(_NAME)] | msgspec.UnsetType = msgspec.UNSET
    effect: Annotated[Effect, meta("What the rule credits.")] | msgspec.UnsetType = msgspec.UNSET
    condition: Annotated[Condition, meta(_CONDITION)] | msgspec.UnsetType = msgspec.UNSET
    point_type: Annotated[PointTypeKey, meta(_POINT_TYPE)] | msgspec.UnsetType = msgspec.UNSET
    caps: Annotated[Caps, meta("Limits on what the rule gives.")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    schedule: Annotated[Schedule, meta("When the rule may fire.")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    priority: Annotated[Priority, meta(_PRIORITY)] | msgspec.UnsetType = msgspec.UNSET
    stacking: Annotated[Stacking, meta(_STACKING)] | msgspec.UnsetType = msgspec.UNSET
    status: Annotated[RuleStatus, meta(_STATUS)] | msgspec.UnsetType = msgspec.UNSET


class RuleOut(msgspec.Struct):
    id: Annotated[str, meta("The rule's id (`rule_…`).")]
    version_id: Annotated[str, meta("The current version's id (`rule_….vN`); credits name it.")]
    version: Annotated[int, meta("The current version's number, from 1.")]
    name: Annotated[str, meta(_NAME)]
    status: Annotated[RuleStatus, meta(_STATUS)]
    trigger: Annotated[str, meta(_TRIGGER)]
    condition: Annotated[str, meta(_CONDITION)]
    effect: Annotated[Effect, meta("What the rule credits when it fires.")]
    point_type: Annotated[str, meta(_POINT_TYPE)]
    caps: Annotated[Caps, meta("Limits on what the rule gives.")]
    schedule: Annotated[Schedule, meta("When the rule may fire.")]
    priority: Annotated[int, meta(_PRIORITY)]
    stacking: Annotated[Stacking, meta(_STACKING)]
    created_at: Annotated[datetime, meta("When the rule was made (UTC).")]
    updated_at: Annotated[datetime, meta("When the rule last changed (UTC).")]
    object: Annotated[Literal["rule"], meta("Always `rule`.")]


class RuleDeleted(msgspec.Struct):
    """What DELETE answers: the rule is gone from the API (its versions stay in the ledger's
    history)."""

    id: Annotated[str, meta("The deleted rule's id.")]
    deleted: Annotated[bool, meta("Always true.")]
    object: Annotated[Literal["rule"], meta("Always `rule`.")]


EventType = Trigger


def _since_1970(description: str) -> msgspec.Meta:
    """An event's time: written in 1970 or later (checked as written by `check_event`)."""
    return msgspec.Meta(
        description=f"{description} Written in 1970 or later.",
        extra_json_schema={"extra": {"pattern": SINCE_1970}},
    )


class EventCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Give `member_id` or `member_external_id` (one of them: otherwise a 422). `order.*`
    events need `data.order_id` (a string of 1 to 128 characters or an integer), which
    deduplicates them; others are deduplicated by the Idempotency-Key header. `occurred_at`
    may be at most 5 minutes ahead (422 `occurred_at_in_future`) and no earlier than 1970."""

    type: Annotated[EventType, meta("The event's type; rules with this trigger judge it.")]
    occurred_at: Annotated[AwareTime, _since_1970("When it happened, with an offset.")]
    member_id: Annotated[MemberId, meta("The member's id.")] | None = None
    member_external_id: (
        Annotated[ExternalId, meta("Or the member's id in the merchant's system.")] | None
    ) = None
    data: Annotated[
        dict[str, Any], meta("The event's data, as conditions and effects read it.")
    ] = msgspec.field(default_factory=dict)


class Verdict(msgspec.Struct):
    """What one rule made of an event, and why."""

    rule_id: Annotated[str, meta("The rule judged.")]
    version_id: Annotated[str, meta("The version that judged.")]
    fired: Annotated[bool, meta("Whether it credited points.")]
    points: Annotated[int, meta("Points it credited (after tier multiplier and caps).")]
    reason: Annotated[
        str,
        meta(
            "fired, condition_false, outside_schedule, cap_reached, budget_spent, no_points, "
            "skipped: …, or error: … (why it was skipped)."
        ),
    ]


class EventOut(msgspec.Struct):
    id: Annotated[str, meta("The event's id (`ev_…`).")]
    type: Annotated[str, meta("The event's type.")]
    member_id: Annotated[str, meta("The member the event is about.")]
    occurred_at: Annotated[datetime, meta("When it happened (UTC).")]
    local_date: Annotated[
        date, meta("The day it happened in the program's time zone (caps, check-ins).")
    ]
    transactions: Annotated[
        list[Transaction], meta("The ledger transactions it made (credits, clawbacks).")
    ]
    verdicts: Annotated[list[Verdict], meta("What each rule made of it.")]
    object: Annotated[Literal["event"], meta("Always `event`.")]


class SimulateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """An event to judge without writing; `draft` judges it against one rule not saved."""

    event: Annotated[EventCreate, meta("The event to judge.")]
    draft: (
        Annotated[RuleCreate, meta("A rule to judge it with instead of the live ones.")] | None
    ) = None


class SimulateOut(msgspec.Struct):
    member_id: Annotated[str, meta("The member the event is about.")]
    points: Annotated[int, meta("What the rules would credit in all.")]
    verdicts: Annotated[list[Verdict], meta("What each rule would make of it.")]


class CheckInCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A daily check-in; `occurred_at` defaults to now. Once per member per local day, for
    today or up to the settings' `checkin_backdate_days` before (422 `checkin_too_old`)."""

    member_id: Annotated[MemberId, meta("The member's id.")] | None = None
    member_external_id: (
        Annotated[ExternalId, meta("Or the member's id in the merchant's system.")] | None
    ) = None
    occurred_at: Annotated[AwareTime, _since_1970("When; now when left out.")] | None = None


TierKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
MAX_BENEFITS = 20


class Benefit(msgspec.Struct, forbid_unknown_fields=True):
    """Something a tier gives its members, for the mall page to show."""

    key: Annotated[
        str,
        meta(
            "A stable key the page can style by: lower case, digits, `_`.",
            pattern=r"^[a-z][a-z0-9_]{0,39}$",
        ),
    ]
    description: Annotated[
        str,
        meta(
            "What it is, for members to read.", min_length=1, max_length=300, pattern=r"^[^\x00]*$"
        ),
    ]


_BASIS = "`points` granted by rules (less refunds), or money `spend` on paid orders."
_WINDOW_KIND = "`rolling_days` (the last window_days days) or the local `calendar_year`."
_MULTIPLIER = (
    "Scales what rules grant the tier's members: a decimal string 1 to 100, at most 3 "
    'decimals (answered in canonical form: "1.50" is "1.5").'
)


class TierCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Members reach the tier when their `basis` (points granted by rules, or money spent)
    within the window reaches `threshold`; they keep it while they requalify, plus
    `retention_days` of grace after a review they fail. `earn_multiplier` scales what
    rules grant them (campaign multipliers apply on top). 409 `tier_exists`; 422 for
    `rolling_days` without `window_days`."""

    key: Annotated[TierKey, meta("The tier's key: lower case, digits, `_`.")]
    name: Annotated[Name, meta("The tier's name, shown to members.")]
    threshold: Annotated[
        int, meta("The qualifying value that reaches the tier.", ge=0, le=MAX_POINTS)
    ]
    basis: Annotated[Literal["points", "spend"], meta(_BASIS)] = "points"
    window_kind: Annotated[Literal["rolling_days", "calendar_year"], meta(_WINDOW_KIND)] = (
        "rolling_days"
    )
    window_days: (
        Annotated[int, meta("The rolling window in days (1 to 3660).", ge=1, le=3660)] | None
    ) = 365
    earn_multiplier: Annotated[TierMultiplier, meta(_MULTIPLIER)] = "1"
    retention_days: Annotated[int, meta("Days of grace after a failed review.", ge=0, le=3660)] = 0
    benefits: Annotated[
        list[Benefit],
        meta("What the tier gives, kept in the order given (at most 20).", max_length=MAX_BENEFITS),
    ] = msgspec.field(default_factory=list)


class TierOut(msgspec.Struct):
    key: Annotated[str, meta("The tier's key.")]
    name: Annotated[str, meta("The tier's name.")]
    threshold: Annotated[int, meta("The qualifying value that reaches the tier.")]
    basis: Annotated[Literal["points", "spend"], meta(_BASIS)]
    window_kind: Annotated[Literal["rolling_days", "calendar_year"], meta(_WINDOW_KIND)]
    window_days: Annotated[int | None, meta("The rolling window in days.")]
    earn_multiplier: Annotated[str, meta(_MULTIPLIER)]
    retention_days: Annotated[int, meta("Days of grace after a failed review.")]
    benefits: Annotated[list[Benefit], meta("What the tier gives, in the order given.")]
    object: Annotated[Literal["tier"], meta("Always `tier`.")]


class TierChangeOut(msgspec.Struct):
    id: Annotated[str, meta("The change's id (`tch_…`), a cursor for the next page.")]
    member_id: Annotated[str, meta("The member whose tier changed.")]
    from_tier: Annotated[str | None, meta("The tier before; null for none.")]
    to_tier: Annotated[str | None, meta("The tier after; null for none.")]
    at: Annotated[datetime, meta("When the change took effect (UTC).")]
    reason: Annotated[str, meta("`qualified` (an upgrade) or `not requalified` (a review).")]
    object: Annotated[Literal["tier_change"], meta("Always `tier_change`.")]


class BacktestRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Replay the stored events of [`from`, `to`) against a draft rule, writing nothing.
    `to` not after `from` is a 422."""

    draft: Annotated[RuleCreate, meta("The rule to try.")]
    start: Annotated[AwareTime, meta("The period's start, inclusive.")] = msgspec.field(name="from")
    end: Annotated[AwareTime, meta("The period's end, exclusive.")] = msgspec.field(name="to")


_LIABILITY = (
    "Points x the tenant's point value: a decimal string with the currency's minor-unit "
    'digits ("99.00" USD, "100" JPY, "1.500" KWD).'
)


class BacktestDay(msgspec.Struct):
    date: Annotated[str, meta("The day, in the program's time zone (YYYY-MM-DD).")]
    events: Annotated[int, meta("Events of the trigger that day.")]
    fired: Annotated[int, meta("Events the draft would have credited.")]
    points: Annotated[int, meta("Points it would have credited.")]
    liability: Annotated[str, meta(_LIABILITY)]


class BacktestOut(msgspec.Struct):
    rule: Annotated[str, meta("The draft's name.")]
    currency: Annotated[str, meta("The tenant's currency (ISO 4217).")]
    days: Annotated[list[BacktestDay], meta("Per local day with events, in order.")]
    events: Annotated[int, meta("Events judged.")]
    points: Annotated[int, meta("Points the draft would have credited.")]
    liability: Annotated[str, meta(_LIABILITY)]
    truncated: Annotated[
        bool, meta("Whether judging stopped early (100,000 events or 10 seconds).")
    ]


# --- what bodies' fields cannot say each on its own (see ledger.document) -------------------

_REFERENCE = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 128}, {"type": "integer"}]}
# A per_item effect names a SKU, a category or both.
PER_ITEM_RULE: document.Rule = {
    "if": document.is_value("kind", "per_item"),
    "then": {"anyOf": [document.given("sku"), document.given("category")]},
}
# Exactly one of the member's ids. The branches exclude each other (each says the other id
# is absent or null), so `anyOf` says `oneOf`, in the form generators make bodies from.
ONE_MEMBER: document.Rule = {
    "anyOf": [
        {
            "required": [name],
            "properties": {name: {"type": "string"}, other: {"type": "null"}},
        }
        for name, other in (
            ("member_id", "member_external_id"),
            ("member_external_id", "member_id"),
        )
    ]
}


def _typed(event_type: str, data: dict[str, Any], *required: str) -> document.Rule:
    return {
        "required": ["data"],
        "properties": {
            "type": {"const": event_type},
            "data": {"required": list(required), "properties": data},
        },
    }


# What each event type needs in `data`, one branch per kind of type (as `check_event` and
# the referral check refuse the rest).
EVENT_DATA: document.Rule = {
    "anyOf": [
        {
            "properties": {
                "type": {
                    "pattern": r"^(member\.signed_up|review\.created|checkin"
                    r"|custom\.[a-z0-9_.]{1,50})$"
                }
            }
        },
        _typed("order.paid", {"order_id": _REFERENCE}, "order_id"),
        _typed("order.refunded", {"order_id": _REFERENCE, "refund_id": _REFERENCE}, "order_id"),
        _typed("referral.completed", {"referral_code": {"type": "string"}}, "referral_code"),
    ]
}
EVENT_RULES: list[document.Rule] = [ONE_MEMBER, EVENT_DATA]
RULE_RULES: list[document.Rule] = [{"properties": {"effect": PER_ITEM_RULE}}]
DRAFT_RULES: list[document.Rule] = [
    {"properties": {"draft": {"properties": {"effect": PER_ITEM_RULE}}}}
]
SIMULATE_RULES: list[document.Rule] = [
    {"properties": {"event": {"allOf": EVENT_RULES}}},
    *DRAFT_RULES,
]
TIER_RULES: list[document.Rule] = [
    {
        "if": document.is_value("window_kind", "rolling_days", or_absent=True),
        "then": {"properties": {"window_days": {"not": {"type": "null"}}}},
    }
]
