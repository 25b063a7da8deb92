from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from pointsmall.ledger import document
from pointsmall.schemas import Name

MAX_POINTS = 2**53  # the largest integer every JSON client reads exactly


def meta(description: str, *, minimum: int | None = None, **constraints: Any) -> msgspec.Meta:
    """A field's one-line description with its constraints. A lower bound of 0 is also put
    in the schema by hand (`minimum=0` where the type already holds it): the OpenAPI
    generator drops a falsy bound of an optional field."""
    if constraints.get("ge") == 0:
        minimum = 0
    extra = {"minimum": minimum} if minimum is not None else {}
    return msgspec.Meta(
        description=description,
        extra_json_schema={"extra": extra} if extra else None,
        **constraints,
    )


PointTypeKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
MemberId = Annotated[str, msgspec.Meta(max_length=40, pattern=r"^mem_[0-9a-z]{1,36}$")]
Points = Annotated[int, msgspec.Meta(ge=1, le=MAX_POINTS)]
SignedPoints = Annotated[int, msgspec.Meta(ge=-MAX_POINTS, le=MAX_POINTS)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]
Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]
Days = Annotated[int, msgspec.Meta(ge=0, le=36500)]
# Times must say their offset: a naive time has no meaning across time zones.
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
# Events are dated 1970 or later, as written: earlier ones are typos (the schema carries the
# pattern by hand: msgspec puts none on a datetime).
FIRST_YEAR = 1970
SINCE_1970 = r"^(19[7-9][0-9]|[2-9][0-9]{3})-"


# The instants kept: a second inside the ends of Python's calendar (the database driver
# reads its very ends as -infinity and infinity, which come back without a time zone).
EARLIEST = datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def to_utc(at: datetime) -> datetime:
    """An instant in UTC, held within [EARLIEST, LATEST]: one written near year 1 or 9999
    whose offset takes it past them (an overflow: it was a 500 or a database error) is held
    at that end."""
    try:
        utc = at.astimezone(UTC)
    except OverflowError:
        return LATEST if at.year > 1 else EARLIEST
    return min(max(utc, EARLIEST), LATEST)


_MEMBER = "The member's id (`mem_…`)."
_TYPE = "The point type's key; `points`, the default type, when left out."
_REASON = "Why: shown in the member's history (1 to 500 characters)."
_REFERENCE = "The merchant's own reference, such as an order number (1 to 255 characters)."


class EarnCreate(msgspec.Struct, forbid_unknown_fields=True):
    member_id: Annotated[MemberId, meta(_MEMBER)]
    points: Annotated[Points, meta("Points to credit, 1 to 2^53.")]
    reason: Annotated[Reason, meta(_REASON)]
    point_type: Annotated[PointTypeKey, meta(_TYPE)] = "points"
    reference: Annotated[Reference, meta(_REFERENCE)] | None = None


class SpendCreate(msgspec.Struct, forbid_unknown_fields=True):
    member_id: Annotated[MemberId, meta(_MEMBER)]
    points: Annotated[Points, meta("Points to debit, 1 to 2^53.")]
    reason: Annotated[Reason, meta(_REASON)]
    point_type: Annotated[PointTypeKey, meta(_TYPE)] = "points"
    reference: Annotated[Reference, meta(_REFERENCE)] | None = None


class AdjustCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A staff correction: positive credits, negative debits; never zero."""

    member_id: Annotated[MemberId, meta(_MEMBER)]
    points: Annotated[
        SignedPoints,
        msgspec.Meta(
            description="The signed correction: positive credits, negative debits; not 0.",
            extra_json_schema={"extra": {"not": {"const": 0}}},
        ),
    ]
    reason: Annotated[Reason, meta(_REASON)]
    point_type: Annotated[PointTypeKey, meta(_TYPE)] = "points"
    reference: Annotated[Reference, meta(_REFERENCE)] | None = None


class ReverseCreate(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[Reason, meta("Why the transaction is reversed.")] | None = None


TransactionKind = Literal["earn", "spend", "adjust", "reverse", "expire", "release", "clawback"]


class Transaction(msgspec.Struct):
    """A ledger transaction. `points` is the signed change to the member's points; for a
    `release` it is the pending points that became available (the total is unchanged)."""

    id: Annotated[str, meta("The transaction's id (`txn_…`, time-ordered).")]
    kind: Annotated[TransactionKind, meta("What the transaction did.")]
    member_id: Annotated[str, meta("The member whose points changed.")]
    point_type: Annotated[str, meta("The point type's key.")]
    points: Annotated[
        int,
        meta(
            "The signed change to the member's points (an earn +100, a spend -30); for a "
            "`release`, the pending points that became available."
        ),
    ]
    reason: Annotated[str | None, meta("Why, as given (or as the rule or job said).")]
    reference: Annotated[
        str | None,
        meta("The merchant's reference; for a release or clawback, the earn it concerns."),
    ]
    reverses: Annotated[str | None, meta("For a `reverse`: the transaction it reversed.")]
    granted_by: Annotated[str | None, meta("Who made it: an API key's id, `rule:<id>`, or a job.")]
    created_at: Annotated[datetime, meta("When it was written (UTC).")]
    object: Annotated[Literal["transaction"], meta("Always `transaction`.")]


class Expiring(msgspec.Struct):
    points: Annotated[int, meta("Points that expire at `expires_at`.")]
    expires_at: Annotated[datetime, meta("When they expire (UTC).")]


class PointBalance(msgspec.Struct):
    point_type: Annotated[str, meta("The point type's key.")]
    available: Annotated[int, meta("Points the member can spend now (negative only when in debt).")]
    pending: Annotated[int, meta("Points credited but not yet available.")]
    lifetime_earned: Annotated[int, meta("All points ever credited to the member.")]
    expiring: Annotated[
        list[Expiring], meta("The next (at most 5) expiry dates with their points.")
    ]


class MemberBalance(msgspec.Struct):
    member_id: Annotated[str, meta("The member's id.")]
    tier: Annotated[str | None, meta("The member's tier's key; null without a tier.")]
    balances: Annotated[
        list[PointBalance], meta("One per point type the member holds; `points` always.")
    ]


ExpiryPolicy = Literal["never", "rolling", "fixed_date", "end_of_period"]
PendingPolicy = Literal["immediate", "days", "manual"]
Period = Literal["month", "quarter", "year"]

_EXPIRY_POLICY = (
    "`never`; `rolling` (expiry_days after earning); `fixed_date` (at expiry_date); "
    "`end_of_period` (end of the expiry_period containing earning + expiry_days)."
)
_EXPIRY_DAYS = "Days: `rolling` needs it; `end_of_period` adds it before finding the period."
_EXPIRY_DATE = "The instant points expire, with an offset: `fixed_date` needs it."
_EXPIRY_PERIOD = "`end_of_period` needs it: the month, quarter or year (tenant's time zone)."
_PENDING_POLICY = (
    "`immediate`; `days` (available pending_days after earning); `manual` (until released "
    "through POST /v1/transactions/{id}/release)."
)
_PENDING_DAYS = "Days an earn stays pending: `days` needs it."
_NEGATIVE = "Whether reversing spent points may leave the member in debt."


# What each expiry policy needs, and what it reads (end_of_period adds expiry_days).
EXPIRY_FIELDS = ("expiry_days", "expiry_date", "expiry_period")
EXPIRY_NEEDS: dict[str, tuple[str, ...]] = {
    "never": (),
    "rolling": ("expiry_days",),
    "fixed_date": ("expiry_date",),
    "end_of_period": ("expiry_period",),
}
EXPIRY_USES: dict[str, tuple[str, ...]] = {
    "never": (),
    "rolling": ("expiry_days",),
    "fixed_date": ("expiry_date",),
    "end_of_period": ("expiry_period", "expiry_days"),
}


def _policy_rules(*, update: bool) -> list[document.Rule]:
    """The rules between a point type's fields, as the services check them: a policy's
    fields are given when it needs them and left out (or null) when it does not use them.
    On create a policy left out is its default; on update the rules bind only a policy
    that is sent."""
    rules: list[document.Rule] = []
    for policy, uses in EXPIRY_USES.items():
        default = not update and policy == "never"
        then = document.all_of(
            *(document.given(name) for name in EXPIRY_NEEDS[policy]),
            document.absent(*(name for name in EXPIRY_FIELDS if name not in uses)),
        )
        rules.append(
            {"if": document.is_value("expiry_policy", policy, or_absent=default), "then": then}
        )
    otherwise = document.absent("pending_days")
    rules.append(
        {
            "if": document.is_value("pending_policy", "days"),
            "then": document.given("pending_days"),
            "else": {"if": {"required": ["pending_policy"]}, "then": otherwise}
            if update
            else otherwise,
        }
    )
    return rules


POINT_TYPE_CREATE_RULES = _policy_rules(update=False)
POINT_TYPE_UPDATE_RULES = _policy_rules(update=True)


class PointTypeCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Expiry: `never`; `rolling` (expiry_days after earning); `fixed_date` (expiry_date);
    `end_of_period` (end of the expiry_period containing earning + expiry_days, in the
    tenant's time zone). Pending: `immediate`; `days` (pending_days); `manual` (until
    released through POST /v1/transactions/{id}/release). A policy without a field it needs,
    or with one it does not use, is a 422."""

    key: Annotated[PointTypeKey, meta("The type's key: lower case, digits, `_`.")]
    name: Annotated[Name, meta("The type's name, shown to people.")]
    expiry_policy: Annotated[ExpiryPolicy, meta(_EXPIRY_POLICY)] = "never"
    expiry_days: Annotated[Days, meta(_EXPIRY_DAYS, minimum=0)] | None = None
    expiry_date: Annotated[AwareTime, meta(_EXPIRY_DATE)] | None = None
    expiry_period: Annotated[Period, meta(_EXPIRY_PERIOD)] | None = None
    pending_policy: Annotated[PendingPolicy, meta(_PENDING_POLICY)] = "immediate"
    pending_days: Annotated[Days, meta(_PENDING_DAYS, minimum=0)] | None = None
    allow_negative: Annotated[bool, meta(_NEGATIVE)] = False


class PointTypeUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Only the fields sent change. Sending `expiry_policy` (or `pending_policy`) replaces
    that policy with what the body gives, checked as on create (422); sending only a
    policy's fields changes them on the stored policy (409 `policy_mismatch` when they do
    not fit it). Policies apply to credits from now on: points already credited keep the
    expiry and availability they were given (a lot pending under `manual` still needs its
    release)."""

    name: Annotated[Name, meta("The type's name, shown to people.")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    expiry_policy: Annotated[ExpiryPolicy, meta(_EXPIRY_POLICY)] | msgspec.UnsetType = msgspec.UNSET
    expiry_days: Annotated[Days, meta(_EXPIRY_DAYS, minimum=0)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    expiry_date: Annotated[AwareTime, meta(_EXPIRY_DATE)] | msgspec.UnsetType | None = msgspec.UNSET
    expiry_period: Annotated[Period, meta(_EXPIRY_PERIOD)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    pending_policy: Annotated[PendingPolicy, meta(_PENDING_POLICY)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    pending_days: Annotated[Days, meta(_PENDING_DAYS, minimum=0)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    allow_negative: Annotated[bool, meta(_NEGATIVE)] | msgspec.UnsetType = msgspec.UNSET


class PointTypeOut(msgspec.Struct):
    key: Annotated[str, meta("The type's key.")]
    name: Annotated[str, meta("The type's name.")]
    expiry_policy: Annotated[ExpiryPolicy, meta(_EXPIRY_POLICY)]
    expiry_days: Annotated[int | None, meta(_EXPIRY_DAYS)]
    expiry_date: Annotated[datetime | None, meta("When `fixed_date` points expire (UTC).")]
    expiry_period: Annotated[Period | None, meta(_EXPIRY_PERIOD)]
    pending_policy: Annotated[PendingPolicy, meta(_PENDING_POLICY)]
    pending_days: Annotated[int | None, meta(_PENDING_DAYS)]
    allow_negative: Annotated[bool, meta(_NEGATIVE)]
    created_at: Annotated[datetime, meta("When the type was made (UTC).")]
    object: Annotated[Literal["point_type"], meta("Always `point_type`.")]
