"""The rules engine: pure evaluation, no I/O. Given the active rules for an event's trigger,
the member, the event and how much each rule already gave, it says what each rule awards
and why (or why not). Conditions are CEL, compiled once per immutable rule version; those
that may take long on the event at hand (`offloaded`) are evaluated by the caller in a
worker process, and their outcomes given to `evaluate`."""

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
)
from typing import Any

import cel
import msgspec

from pointsmall.errors import FieldError, InvalidInput
from pointsmall.ledger.schemas import MAX_POINTS
from pointsmall.rules import conditions, schemas

_ROUNDING = {"floor": ROUND_FLOOR, "round": ROUND_HALF_UP, "ceil": ROUND_CEILING}
# Amounts from event data may be any size: an overflow becomes Infinity, which is then out
# of range like any other amount worth more than MAX_POINTS.
_AMOUNTS = Context(prec=40, traps=[InvalidOperation, DivisionByZero])


class PointsOutOfRange(InvalidInput):
    """An event worth more than MAX_POINTS points: no JSON client reads such a number exactly,
    and no ledger holds it, so the event is refused (422), not skipped."""

    def __init__(self, field: str) -> None:
        super().__init__(
            f"The event makes more than {MAX_POINTS} points.",
            code="points_out_of_range",
            errors=[FieldError(field=field, message=f"makes more than {MAX_POINTS} points")],
        )
        self.field = field


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition, and how much work it may be (`conditions.Checked`)."""

    program: Any
    source: str
    heavy: bool
    weight: int

    def execute(self, context: Any) -> Any:
        return self.program.execute(context)


def compile_condition(expression: str, field: str = "condition") -> Condition:
    """Compile and type-check a condition, or raise a 422 with the message and position."""
    try:
        cel.compile(expression)  # CEL's own syntax errors first
        checked = conditions.check(expression)
        return Condition(cel.compile(checked.source), checked.source, checked.heavy, checked.weight)
    except ValueError as exc:
        raise InvalidInput(
            "The condition does not compile.", errors=[FieldError(field=field, message=str(exc))]
        ) from exc
    except conditions.ConditionError as exc:
        raise InvalidInput(
            "The condition does not type-check.",
            errors=[FieldError(field=field, message=str(exc))],
        ) from exc


def check_effect(effect: schemas.Effect, field: str = "effect") -> None:
    """What the schema cannot say: a per_item effect names a SKU, a category or both.
    (Decimal bounds are in their patterns.)"""
    if isinstance(effect, schemas.PerItemEffect) and effect.sku is None and effect.category is None:
        raise InvalidInput(
            errors=[FieldError(field=f"{field}.sku", message="give sku, category or both")]
        )


_programs: OrderedDict[str, Condition] = OrderedDict()


def program_for(version_id: str, expression: str) -> Condition:
    """Versions never change, so their compiled programs are kept (bounded LRU)."""
    program = _programs.get(version_id)
    if program is None:
        try:
            checked = conditions.check(expression)
        except conditions.ConditionError:
            # Saved before conditions were type-checked or bounded: run it as it is, and as
            # one whose work is unknown.
            checked = conditions.Checked(expression, heavy=True, weight=0)
        program = _programs[version_id] = Condition(
            cel.compile(checked.source), checked.source, checked.heavy, checked.weight
        )
        if len(_programs) > 5000:
            _programs.popitem(last=False)
    else:
        _programs.move_to_end(version_id)
    return program


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule_id: str
    version_id: str
    name: str
    program: Condition
    effect: schemas.Effect
    point_type: str
    caps: schemas.Caps
    schedule: schemas.Schedule
    priority: int
    stacking: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Points a rule already gave: this member in the event's day/week/month and in all,
    and everyone in all (the budget)."""

    day: int = 0
    week: int = 0
    month: int = 0
    lifetime: int = 0
    budget: int = 0


@dataclass(frozen=True, slots=True)
class Windows:
    day: tuple[datetime, datetime]
    week: tuple[datetime, datetime]
    month: tuple[datetime, datetime]


def windows(occurred_at: datetime, zone: tzinfo) -> Windows:
    """The local day, ISO week and month around `occurred_at`, as UTC-aware bounds."""
    local = occurred_at.astimezone(zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.isoweekday() - 1)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)

    def span(start: datetime, end: datetime) -> tuple[datetime, datetime]:
        # Rebuild through the zone so DST changes land on the right offset.
        return (
            start.replace(tzinfo=None).replace(tzinfo=zone),
            end.replace(tzinfo=None).replace(tzinfo=zone),
        )

    return Windows(
        day=span(day, day + timedelta(days=1)),
        week=span(week, week + timedelta(days=7)),
        month=span(month, next_month),
    )


def in_schedule(schedule: schemas.Schedule, occurred_at: datetime, zone: tzinfo) -> bool:
    if schedule.starts_at and occurred_at < schedule.starts_at:
        return False
    if schedule.ends_at and occurred_at > schedule.ends_at:
        return False
    local = occurred_at.astimezone(zone)
    if schedule.days_of_week and local.isoweekday() not in schedule.days_of_week:
        return False
    if schedule.hours:
        start, end = schedule.hours
        if not start <= local.hour < end:
            return False
    return True


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            raise KeyError(part)
        data = data[part]
    return data


def _amount_field(effect: schemas.Effect) -> str:
    """The event field whose size makes a rule's points."""
    if isinstance(effect, schemas.PerUnitEffect):
        return f"data.{effect.field}"
    return "data.items" if isinstance(effect, schemas.PerItemEffect) else "data"


def _rounded(amount: Decimal, effect: schemas.PerUnitEffect | schemas.PerItemEffect) -> int:
    if amount > MAX_POINTS:
        raise PointsOutOfRange(_amount_field(effect))
    return int(amount.to_integral_value(rounding=_ROUNDING[effect.rounding]))


def _per_unit(effect: schemas.PerUnitEffect, event: dict[str, Any]) -> int:
    value = _lookup(event["data"], effect.field)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"data.{effect.field} is not a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise TypeError(f"data.{effect.field} is not a number") from exc
    if not number.is_finite():
        raise TypeError(f"data.{effect.field} is not a number")
    return _rounded(_AMOUNTS.multiply(number, Decimal(effect.points_per_unit)), effect)


def _per_item(effect: schemas.PerItemEffect, event: dict[str, Any]) -> int:
    items = _lookup(event["data"], "items")
    if not isinstance(items, list):
        raise TypeError("data.items is not a list")
    total = Decimal(0)
    for item in items:
        if not isinstance(item, dict):
            raise TypeError("data.items holds a non-object")
        if effect.sku is not None and item.get("sku") != effect.sku:
            continue
        if effect.category is not None and item.get("category") != effect.category:
            continue
        price, quantity = _lookup(item, "price"), item.get("quantity", 1)
        for value in (price, quantity):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError("an item's price or quantity is not a number")
        total = _AMOUNTS.add(total, _AMOUNTS.multiply(Decimal(str(price)), Decimal(str(quantity))))
    return _rounded(_AMOUNTS.multiply(total, Decimal(effect.points_per_unit)), effect)


def _base_points(
    effect: schemas.FixedEffect | schemas.PerUnitEffect | schemas.PerItemEffect,
    event: dict[str, Any],
) -> int:
    if isinstance(effect, schemas.FixedEffect):
        return effect.points
    if isinstance(effect, schemas.PerUnitEffect):
        return _per_unit(effect, event)
    return _per_item(effect, event)


def _error(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"error: missing key {exc.args[0]!r}"
    if isinstance(exc, ZeroDivisionError):
        return "error: division by zero"
    if isinstance(exc, TypeError):
        return f"error: type mismatch ({str(exc).split('.')[0]})"
    return f"error: {exc}"


def _capped(rule: CompiledRule, points: int, usage: Usage) -> tuple[int, str]:
    caps = rule.caps
    room = [
        cap - used
        for cap, used in (
            (caps.per_member_day, usage.day),
            (caps.per_member_week, usage.week),
            (caps.per_member_month, usage.month),
            (caps.per_member_lifetime, usage.lifetime),
        )
        if cap is not None
    ]
    if caps.budget is not None and caps.budget - usage.budget < points:
        budget_left = max(0, caps.budget - usage.budget)
        if budget_left == 0:
            return 0, "budget_spent"
        room.append(budget_left)
    if room and min(room) <= 0:
        return 0, "cap_reached"
    return (min([points, *room]), "fired")


# Measured on the library: converting the variables takes up to 200 ns per byte of data for
# a judgement and 50 ns more per condition, and an operator up to 6 ns per byte it handles
# (`weight` counts those). A judgement estimated to take longer runs in a worker.
INLINE_NANOSECONDS = 5_000_000


def offloaded(rules: list[CompiledRule], data_size: int) -> list[CompiledRule]:
    """The rules whose conditions are to be evaluated in a worker, cheapest first: those that
    may run long, and all of them when the data is too large to judge them here quickly."""
    light = [r for r in rules if not r.program.heavy]
    work = data_size * (200 + sum(50 + 6 * r.program.weight for r in light))
    chosen = rules if work > INLINE_NANOSECONDS else [r for r in rules if r.program.heavy]
    return sorted(chosen, key=lambda r: (r.program.heavy, r.program.weight))


def evaluate(
    rules: list[CompiledRule],
    *,
    event: dict[str, Any],
    member: dict[str, Any],
    now: datetime,
    zone: tzinfo,
    usage: dict[str, Usage],
    tier_multiplier: Decimal = Decimal(1),
    outcomes: Mapping[str, object] | None = None,
) -> list[tuple[CompiledRule, schemas.Verdict]]:
    """Judge an event. Base rules first (highest priority first; an exclusive rule that
    fires stops the base rules after it), scaled by the member's tier multiplier, then
    multipliers (campaigns) on what the base rules gave. `outcomes` are what conditions
    evaluated elsewhere said (a value or an exception), by version; the rest run here."""
    outcomes = outcomes or {}
    context = None
    if any(r.version_id not in outcomes for r in rules):
        context = cel.Context(
            variables={"event": event, "member": member, "now": now},
            functions=conditions.ACCESSORS,
        )
    occurred_at: datetime = event["occurred_at"]
    base = [r for r in rules if not isinstance(r.effect, schemas.MultiplierEffect)]
    multipliers = [r for r in rules if isinstance(r.effect, schemas.MultiplierEffect)]
    results: list[tuple[CompiledRule, schemas.Verdict]] = []
    base_points = total = 0
    stopped_by: str | None = None

    def verdict(rule: CompiledRule, points: int, reason: str) -> None:
        results.append(
            (
                rule,
                schemas.Verdict(
                    rule.rule_id, rule.version_id, reason == "fired" and points > 0, points, reason
                ),
            )
        )

    for group in (
        sorted(base, key=lambda r: -r.priority),
        sorted(multipliers, key=lambda r: -r.priority),
    ):
        for rule in group:
            if stopped_by and rule in base:
                verdict(rule, 0, f"skipped: exclusive rule {stopped_by} fired")
                continue
            if not in_schedule(rule.schedule, occurred_at, zone):
                verdict(rule, 0, "outside_schedule")
                continue
            try:
                if rule.version_id in outcomes:
                    matched = outcomes[rule.version_id]
                    if isinstance(matched, Exception):
                        raise matched
                else:
                    matched = rule.program.execute(context)
                if not isinstance(matched, bool):
                    raise TypeError("the condition is not a boolean")
                if not matched:
                    verdict(rule, 0, "condition_false")
                    continue
                effect = rule.effect
                if not isinstance(effect, schemas.MultiplierEffect):
                    points = int(
                        (_base_points(effect, event) * tier_multiplier).to_integral_value(
                            rounding=ROUND_FLOOR
                        )
                    )
                else:
                    bonus = Decimal(base_points) * (Decimal(effect.factor) - 1)
                    points = int(bonus.to_integral_value(rounding=ROUND_FLOOR))
            except PointsOutOfRange:
                raise
            except Exception as exc:  # a rule that fails at run time is skipped, with the reason
                verdict(rule, 0, _error(exc))
                continue
            if points <= 0:
                verdict(rule, 0, "no_points")
                continue
            if points > MAX_POINTS:  # a tier or campaign multiplied it past the limit
                raise PointsOutOfRange(_amount_field(rule.effect))
            points, reason = _capped(rule, points, usage.get(rule.rule_id, Usage()))
            verdict(rule, points, reason)
            total += points
            if total > MAX_POINTS:  # rules within the limit each, not together
                raise PointsOutOfRange("data")
            if reason == "fired" and rule in base:
                base_points += points
                if rule.stacking == "exclusive":
                    stopped_by = rule.rule_id
    return results


_DECIMALS = ("points_per_unit", "factor")


def canonical_effect(effect: schemas.Effect) -> schemas.Effect:
    """The effect with its decimals in their one written form (`"1.50"` is `"1.5"`)."""
    changes = {
        name: schemas.canonical(getattr(effect, name))
        for name in _DECIMALS
        if hasattr(effect, name)
    }
    return msgspec.structs.replace(effect, **changes) if changes else effect


def effect_from_json(raw: dict[str, Any]) -> schemas.Effect:
    """A stored effect. Decimals saved before they were canonical (`"1.50"`, `"1E+1"`, or a
    JSON number) are read in canonical form."""
    raw = {
        k: schemas.canonical(str(v)) if k in _DECIMALS and v is not None else v
        for k, v in raw.items()
    }
    effect: schemas.Effect = msgspec.convert(raw, schemas.Effect)
    return effect
