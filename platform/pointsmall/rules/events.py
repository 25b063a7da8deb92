"""Events: judged by the rules engine and credited in one transaction; simulate and backtest."""

import asyncio
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from pointsmall.errors import Conflict, FieldError, InvalidInput, NotFound
from pointsmall.ids import new_id
from pointsmall.ledger import services as ledger
from pointsmall.ledger.schemas import FIRST_YEAR, Transaction, to_utc
from pointsmall.rules import engine, sandbox, schemas
from pointsmall.rules.tiers import Tiers
from pointsmall.tenancy.zone import tenant_zone
from pointsmall_tenants import quoted_schema


def compiled(row: Any) -> engine.CompiledRule:
    return engine.CompiledRule(
        rule_id=row["rule_id"],
        version_id=row["id"],
        name=row["name"],
        program=engine.program_for(row["id"], row["condition"]),
        effect=engine.effect_from_json(msgspec.json.decode(row["effect"])),
        point_type=row["point_type"],
        caps=msgspec.json.decode(row["caps"], type=schemas.Caps),
        schedule=msgspec.json.decode(row["schedule"], type=schemas.Schedule),
        priority=row["priority"],
        stacking=row["stacking"],
    )


class TenantSql:
    """Raw SQL against one tenant schema on one asyncpg connection."""

    def __init__(self, conn: Any, schema: str) -> None:
        self.conn = conn
        self.s = quoted_schema(schema)

    async def member(self, data: schemas.EventCreate, *, lock: bool) -> asyncpg.Record:
        if (data.member_id is None) == (data.member_external_id is None):
            raise InvalidInput(
                errors=[
                    FieldError(field="member_id", message="give member_id or member_external_id")
                ]
            )
        column, value = (
            ("id", data.member_id) if data.member_id else ("external_id", data.member_external_id)
        )
        row: asyncpg.Record | None = await self.conn.fetchrow(
            f"SELECT m.*, coalesce((SELECT sum(lifetime_earned) FROM {self.s}.balances b"
            f" WHERE b.member_id = m.id), 0) AS lifetime,"
            f" (SELECT array[c.local_date::text, c.streak::text] FROM {self.s}.checkins c"
            f"  WHERE c.member_id = m.id ORDER BY c.local_date DESC LIMIT 1) AS last_checkin,"
            f" mt.tier_key AS tier, coalesce(t.earn_multiplier, 1) AS tier_multiplier"
            f" FROM {self.s}.members m LEFT JOIN {self.s}.member_tiers mt ON mt.member_id = m.id"
            f" LEFT JOIN {self.s}.tiers t ON t.key = mt.tier_key"
            f" WHERE m.{column} = $1" + (" FOR UPDATE OF m" if lock else ""),
            value,
        )
        if row is None:
            raise NotFound("No such member.")
        return row

    async def zone(self) -> ZoneInfo:
        return await tenant_zone(self.conn, self.s)

    async def rules(self, trigger: str) -> list[engine.CompiledRule]:
        rows = await self.conn.fetch(
            f"SELECT v.*, r.name FROM {self.s}.rules r JOIN {self.s}.rule_versions v"
            f" ON v.rule_id = r.id AND v.version = r.version"
            f" WHERE r.status = 'active' AND r.deleted_at IS NULL AND r.trigger = $1",
            trigger,
        )
        return [compiled(row) for row in rows]

    async def usage(
        self, member_id: str, rule_ids: list[str], w: engine.Windows
    ) -> dict[str, engine.Usage]:
        if not rule_ids:
            return {}
        rows = await self.conn.fetch(
            f"""SELECT rule_id,
                 coalesce(sum(points) FILTER (WHERE member_id = $1 AND occurred_at >= $3 AND occurred_at < $4), 0),
                 coalesce(sum(points) FILTER (WHERE member_id = $1 AND occurred_at >= $5 AND occurred_at < $6), 0),
                 coalesce(sum(points) FILTER (WHERE member_id = $1 AND occurred_at >= $7 AND occurred_at < $8), 0),
                 coalesce(sum(points) FILTER (WHERE member_id = $1), 0),
                 coalesce(sum(points), 0)
               FROM {self.s}.rule_awards WHERE rule_id = ANY($2) GROUP BY rule_id""",
            member_id,
            rule_ids,
            *w.day,
            *w.week,
            *w.month,
        )
        return {r[0]: engine.Usage(r[1], r[2], r[3], r[4], r[5]) for r in rows}


def _streak(row: asyncpg.Record, today: date) -> int:
    """The run of daily check-ins that is still alive on `today` (0 if it broke)."""
    last = row["last_checkin"]
    if not last:
        return 0
    day, streak = date.fromisoformat(last[0]), int(last[1])
    return streak if day >= today - timedelta(days=1) else 0


def _member_view(row: asyncpg.Record, today: date) -> dict[str, Any]:
    return {
        "id": row["id"],
        "external_id": row["external_id"],
        "email": row["email"],
        "name": row["name"],
        "tier": row["tier"],
        "attributes": msgspec.json.decode(row["attributes"])
        if isinstance(row["attributes"], str)
        else row["attributes"],
        "lifetime_points": int(row["lifetime"]),
        "signup_date": row["created_at"],
        "streak": _streak(row, today),
    }


def _event_view(data: schemas.EventCreate) -> dict[str, Any]:
    return {"type": data.type, "occurred_at": data.occurred_at, "data": data.data}


# A client clock this far ahead is a clock; further is an event that has not happened.
FUTURE_SKEW = timedelta(minutes=5)


def _reference(value: Any) -> str | None:
    """An order or refund id: a string of 1 to 128 characters, or an integer (`5.0` is the
    integer 5, as JSON Schema reads it)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and 0 < len(value) <= 128 else None


def check_event(data: schemas.EventCreate, prefix: str = "") -> None:
    """What an event must be, recorded or simulated: not dated in the future (nor before
    1970), and an order event names its order (that is what deduplicates it)."""
    if data.occurred_at.year < FIRST_YEAR:  # as written, as the schema's pattern says
        message = f"must be written in {FIRST_YEAR} or later"
        raise InvalidInput(errors=[FieldError(field=f"{prefix}occurred_at", message=message)])
    if data.occurred_at > datetime.now(UTC) + FUTURE_SKEW:
        raise InvalidInput(
            "An event cannot be dated more than 5 minutes ahead.",
            code="occurred_at_in_future",
            errors=[
                FieldError(field=f"{prefix}occurred_at", message="more than 5 minutes from now")
            ],
        )
    shape = "a string of 1 to 128 characters or an integer"
    if data.type.startswith("order.") and _reference(data.data.get("order_id")) is None:
        message = f"required for {data.type}: {shape}"
        raise InvalidInput(errors=[FieldError(field=f"{prefix}data.order_id", message=message)])
    refund = data.type == "order.refunded" and "refund_id" in data.data
    if refund and _reference(data.data["refund_id"]) is None:
        raise InvalidInput(errors=[FieldError(field=f"{prefix}data.refund_id", message=shape)])


def _dedupe_key(data: schemas.EventCreate, idempotency_key: str | None) -> str | None:
    """An order is paid once (its id); a refund happens once per `refund_id`."""
    order_id = _reference(data.data.get("order_id"))
    if data.type == "order.paid":
        return f"order.paid:{order_id}"
    if data.type == "referral.completed" and data.member_id:
        return f"referral.completed:{data.member_id}"
    refund_id = _reference(data.data.get("refund_id"))
    if data.type == "order.refunded" and refund_id is not None:
        return f"order.refunded:{order_id}:{refund_id}"
    return idempotency_key


def _number(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(errors=[FieldError(field=f"data.{field}", message="must be a number")])
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput(
            errors=[FieldError(field=f"data.{field}", message="must be a number")]
        ) from exc
    if not number.is_finite() or number < 0:
        raise InvalidInput(
            errors=[FieldError(field=f"data.{field}", message="must be a number >= 0")]
        )
    return number


async def _referrer(
    tenant: TenantSql, data: schemas.EventCreate, referee: asyncpg.Record
) -> asyncpg.Record:
    """The member whose `data.referral_code` this is; never the referee, nor one who shares
    the referee's email."""
    code = data.data.get("referral_code")
    if not isinstance(code, str):
        raise InvalidInput(
            errors=[
                FieldError(field="data.referral_code", message="required for referral.completed")
            ]
        )
    referrer = await tenant.conn.fetchrow(
        f"SELECT id FROM {tenant.s}.members WHERE referral_code = $1", code.upper()
    )
    if referrer is None:
        raise NotFound("No member has this referral code.")
    row = await tenant.member(
        schemas.EventCreate(type=data.type, occurred_at=data.occurred_at, member_id=referrer["id"]),
        lock=True,
    )
    same_email = (
        row["email"] and referee["email"] and row["email"].lower() == referee["email"].lower()
    )
    if row["id"] == referee["id"] or same_email:
        raise InvalidInput(
            "A member cannot refer itself or a member with the same email.",
            code="invalid_referral",
            status=422,
            errors=[FieldError(field="data.referral_code", message="self-referral")],
        )
    return row


async def _refund(
    tenant: TenantSql, data: schemas.EventCreate, member: asyncpg.Record
) -> list[Transaction]:
    """Take back the points an order earned, in proportion to what has been refunded so far
    (`refund_total`, or the sum of `lines[].amount`; neither, or `full`, is everything),
    from each rule's credit; what earlier refunds took is not taken twice."""
    order_id = _reference(data.data.get("order_id"))  # checked by `check_event`
    paid = await tenant.conn.fetchrow(
        f"SELECT id, data->'total' AS total FROM {tenant.s}.events WHERE key = $1 AND member_id = $2",
        f"order.paid:{order_id}",
        member["id"],
    )
    if paid is None:
        raise NotFound("No paid order with this id for this member.")
    lines = data.data.get("lines")
    if data.data.get("full") is True or ("refund_total" not in data.data and not lines):
        fraction = Decimal(1)
    else:
        this = (
            sum(
                (
                    _number(line.get("amount") if isinstance(line, dict) else None, "lines.amount")
                    for line in lines
                ),
                Decimal(0),
            )
            if isinstance(lines, list)
            else _number(data.data.get("refund_total"), "refund_total")
        )
        before = await tenant.conn.fetchval(
            f"SELECT coalesce(sum((data->>'refunded')::numeric), 0) FROM {tenant.s}.events"
            " WHERE type = 'order.refunded' AND member_id = $1 AND data->>'order_id' = $2",
            member["id"],
            order_id,
        )
        total = _number(msgspec.json.decode(paid["total"]) if paid["total"] else None, "total")
        fraction = min(Decimal(1), (Decimal(before) + this) / total) if total else Decimal(1)
        data.data["refunded"] = str(this)
    awards = await tenant.conn.fetch(
        f"SELECT id, transaction_id, points, clawed_back FROM {tenant.s}.rule_awards"
        " WHERE event_id = $1 ORDER BY id FOR UPDATE",
        paid["id"],
    )
    transactions = []
    for award in awards:
        target = int((award["points"] * fraction).to_integral_value(rounding=ROUND_FLOOR))
        take = target - award["clawed_back"]
        if take <= 0:
            continue
        try:
            raw = await tenant.conn.fetchval(
                f"SELECT {tenant.s}.ledger_clawback($1, $2, $3, $4, NULL)::text",
                award["transaction_id"],
                take,
                f"refund of order {order_id}"[:500],
                f"refund:{order_id}",
            )
        except asyncpg.exceptions.RaiseError as exc:
            raise ledger.api_error(exc) from None
        transactions.append(msgspec.json.decode(raw, type=Transaction))
        await tenant.conn.execute(
            f"UPDATE {tenant.s}.rule_awards SET clawed_back = $2 WHERE id = $1", award["id"], target
        )
    return transactions


async def _evaluate(
    rules: list[engine.CompiledRule],
    *,
    event: dict[str, Any],
    member: dict[str, Any],
    zone: ZoneInfo,
    usage: dict[str, engine.Usage],
    tier_multiplier: Decimal = Decimal(1),
) -> list[tuple[engine.CompiledRule, schemas.Verdict]]:
    """`engine.evaluate`, with the conditions that may take long on this event evaluated in a
    worker, off the event loop and within its time budget."""
    now = datetime.now(UTC)
    live = [r for r in rules if engine.in_schedule(r.schedule, event["occurred_at"], zone)]
    size = len(msgspec.json.encode(event["data"])) + len(msgspec.json.encode(member["attributes"]))
    outcomes: dict[str, object] = {}
    if offloaded := engine.offloaded(live, size):
        said = await sandbox.run(
            [r.program.source for r in offloaded], {"event": event, "member": member, "now": now}
        )
        outcomes = {r.version_id: outcome for r, outcome in zip(offloaded, said, strict=True)}
    return engine.evaluate(
        rules,
        event=event,
        member=member,
        now=now,
        zone=zone,
        usage=usage,
        tier_multiplier=tier_multiplier,
        outcomes=outcomes,
    )


async def _judge(
    tenant: TenantSql,
    data: schemas.EventCreate,
    member: asyncpg.Record,
    extra: list[engine.CompiledRule] | None,
) -> list[tuple[engine.CompiledRule, schemas.Verdict]]:
    zone = await tenant.zone()
    today = data.occurred_at.astimezone(zone).date()
    rules = extra if extra is not None else await tenant.rules(data.type)
    usage = await tenant.usage(
        member["id"], [r.rule_id for r in rules], engine.windows(data.occurred_at, zone)
    )
    return await _evaluate(
        rules,
        event=_event_view(data),
        member=_member_view(member, today),
        zone=zone,
        usage=usage,
        tier_multiplier=Decimal(member["tier_multiplier"]),
    )


async def simulate(
    pool: asyncpg.Pool, schema: str, request: schemas.SimulateRequest
) -> schemas.SimulateOut:
    check_event(request.event, "event.")
    async with pool.acquire() as conn:
        tenant = TenantSql(conn, schema)
        member = await tenant.member(request.event, lock=False)
        draft = None
        if request.draft is not None:
            program = engine.compile_condition(request.draft.condition, "draft.condition")
            engine.check_effect(request.draft.effect, "draft.effect")
            draft = [
                engine.CompiledRule(
                    "rule_draft",
                    "rule_draft.v0",
                    request.draft.name,
                    program,
                    request.draft.effect,
                    request.draft.point_type,
                    request.draft.caps,
                    request.draft.schedule,
                    request.draft.priority,
                    request.draft.stacking,
                )
            ]
        try:
            verdicts = [v for _, v in await _judge(tenant, request.event, member, draft)]
        except engine.PointsOutOfRange as exc:
            raise engine.PointsOutOfRange(f"event.{exc.field}") from None
    return schemas.SimulateOut(
        member_id=member["id"], points=sum(v.points for v in verdicts), verdicts=verdicts
    )


def _replayed(stored: str, zone: ZoneInfo) -> schemas.EventOut:
    """The first answer to an event, as first given. Answers stored before they were in UTC
    (with the offset the client sent) and without `local_date` are brought up to date."""
    raw = msgspec.json.decode(stored)
    occurred_at = datetime.fromisoformat(raw["occurred_at"]).astimezone(UTC)
    raw["occurred_at"] = occurred_at
    raw.setdefault("local_date", occurred_at.astimezone(zone).date())
    return msgspec.convert(raw, schemas.EventOut)


_transactions = msgspec.json.Decoder(list[Transaction])


async def _check_in(
    tenant: TenantSql, data: schemas.EventCreate, member: asyncpg.Record
) -> tuple[schemas.EventCreate, asyncpg.Record]:
    """Record the check-in of the event's local day (409 if there is one) and put the streak
    into the event. The day is today or, as far back as the tenant allows, before."""
    settings = await tenant.conn.fetchrow(
        f"SELECT timezone, checkin_backdate_days FROM {tenant.s}.settings WHERE id = 1"
    )
    assert settings is not None  # provisioning writes the row
    zone = ZoneInfo(settings["timezone"])
    today = data.occurred_at.astimezone(zone).date()
    now = datetime.now(zone).date()
    if today > now:  # within the clock skew `check_event` allows, but tomorrow here
        raise InvalidInput(
            "A check-in is for today or an earlier day.",
            code="occurred_at_in_future",
            errors=[FieldError(field="occurred_at", message="a day after today")],
        )
    if today < now - timedelta(days=settings["checkin_backdate_days"]):
        days = settings["checkin_backdate_days"]
        window = "today only" if days == 0 else f"today or the {days} day(s) before"
        raise InvalidInput(
            f"Check-ins may be dated {window} (settings: checkin_backdate_days).",
            code="checkin_too_old",
            errors=[FieldError(field="occurred_at", message=f"{today} is too long ago")],
        )
    streak = _streak(member, today) + 1  # a run alive yesterday grows; otherwise 0 + 1

    inserted = await tenant.conn.fetchval(
        f"INSERT INTO {tenant.s}.checkins (member_id, local_date, streak) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING streak",
        member["id"],
        today,
        streak,
    )
    if inserted is None:
        raise Conflict("The member has checked in today.", code="already_checked_in")
    data = msgspec.structs.replace(
        data, data={**data.data, "streak": streak, "local_date": today.isoformat()}
    )
    refreshed = await tenant.member(data, lock=False)
    return data, refreshed


async def _award(
    tenant: TenantSql,
    event_id: str,
    member_id: str,
    occurred_at: datetime,
    verdicts: list[tuple[engine.CompiledRule, schemas.Verdict]],
) -> list[Transaction]:
    """Credit every rule that fired, naming its version, in one SQL call."""
    awards = [
        {
            "rule_id": rule.rule_id,
            "rule_version": rule.version_id,
            "point_type": rule.point_type,
            "points": verdict.points,
            "reason": f"rule: {rule.name}"[:500],
        }
        for rule, verdict in verdicts
        if verdict.fired
    ]
    if not awards:
        return []
    try:
        raw = await tenant.conn.fetchval(
            f"SELECT {tenant.s}.rules_award($1, $2, $3, $4::jsonb)::text",
            event_id,
            member_id,
            occurred_at,
            msgspec.json.encode(awards).decode(),
        )
    except asyncpg.exceptions.RaiseError as exc:
        raise ledger.api_error(exc) from None
    return _transactions.decode(raw)


async def record_event(
    pool: asyncpg.Pool, schema: str, data: schemas.EventCreate, *, idempotency_key: str | None
) -> tuple[schemas.EventOut, bool]:
    """Store the event and credit what the rules award, all in one transaction.

    The member's row is locked first, so caps are exact under concurrent events. Returns the
    answer and whether it is a replay of an earlier identical event."""
    check_event(data)
    key = _dedupe_key(data, idempotency_key)
    async with pool.acquire() as conn, conn.transaction():
        tenant = TenantSql(conn, schema)
        member = await tenant.member(data, lock=True)
        if key is not None:
            stored = await conn.fetchval(
                f"SELECT result::text FROM {tenant.s}.events WHERE key = $1", key
            )
            if stored is not None:
                return _replayed(stored, await tenant.zone()), True
        if data.type == "checkin":
            data, member = await _check_in(tenant, data, member)
        refund = data.type == "order.refunded"
        clawbacks = await _refund(tenant, data, member) if refund else []
        sides: list[tuple[asyncpg.Record, list[tuple[engine.CompiledRule, schemas.Verdict]]]] = []
        if data.type == "referral.completed":
            # Both sides are judged by the same rules; `event.data.side` tells them apart.
            referrer = await _referrer(tenant, data, member)
            data = msgspec.structs.replace(
                data, data={**data.data, "referrer_id": referrer["id"], "referee_id": member["id"]}
            )
            for side, row in (("referee", member), ("referrer", referrer)):
                sided = msgspec.structs.replace(data, data={**data.data, "side": side})
                sides.append((row, await _judge(tenant, sided, row, None)))
        elif not refund:
            sides.append((member, await _judge(tenant, data, member, None)))
        judged = [pair for _, verdicts in sides for pair in verdicts]
        event_id = new_id("ev")
        inserted = await conn.fetchval(
            f"INSERT INTO {tenant.s}.events (id, type, member_id, occurred_at, data, key, result)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6, '{}') ON CONFLICT (key) DO NOTHING RETURNING id",
            event_id,
            data.type,
            member["id"],
            data.occurred_at,
            msgspec.json.encode(data.data).decode(),
            key,
        )
        if inserted is None:
            raise Conflict("The same event is being recorded; retry.", code="idempotency_conflict")
        transactions: list[Transaction] = clawbacks
        zone = await tenant.zone()
        tiers = Tiers(conn, tenant.s)
        for row, verdicts in sides:
            transactions += await _award(tenant, event_id, row["id"], data.occurred_at, verdicts)
            await tiers.upgrade(row["id"], data.occurred_at, zone)
        out = schemas.EventOut(
            id=event_id,
            type=data.type,
            member_id=member["id"],
            occurred_at=data.occurred_at.astimezone(UTC),
            local_date=data.occurred_at.astimezone(zone).date(),
            transactions=transactions,
            verdicts=[v for _, v in judged],
            object="event",
        )
        await conn.execute(
            f"UPDATE {tenant.s}.events SET result = $2::jsonb WHERE id = $1",
            event_id,
            msgspec.json.encode(out).decode(),
        )
    return out, False


BACKTEST_LIMIT = 100_000
# Judging stops after this long (`truncated`): a condition evaluated in a worker takes a
# round trip per event, up to its time budget.
BACKTEST_SECONDS = 10.0


async def backtest(
    pool: asyncpg.Pool, schema: str, request: schemas.BacktestRequest
) -> schemas.BacktestOut:
    """Judge each stored event of the period with the draft alone (its caps and budget
    counted as if it had been live), and add up per local day what it would have issued."""
    draft = request.draft
    program = engine.compile_condition(draft.condition, "draft.condition")
    engine.check_effect(draft.effect, "draft.effect")
    if request.end <= request.start:
        raise InvalidInput(errors=[FieldError(field="to", message="must be after from")])
    rule = engine.CompiledRule(
        "rule_draft",
        "rule_draft.v0",
        draft.name,
        program,
        draft.effect,
        draft.point_type,
        draft.caps,
        draft.schedule,
        draft.priority,
        draft.stacking,
    )
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        tenant = TenantSql(conn, schema)
        zone = await tenant.zone()
        settings = await conn.fetchrow(
            f"SELECT currency, point_value, {tenant.s}.mall_minor_digits(currency) AS digits"
            f" FROM {tenant.s}.settings WHERE id = 1"
        )
        assert settings is not None  # provisioning writes the row
        rows = await conn.fetch(
            f"""SELECT e.type, e.occurred_at, e.data::text AS data, e.member_id,
                       (SELECT coalesce(sum(points), 0) FROM {tenant.s}.rule_awards a WHERE a.event_id = e.id) AS base,
                       m.*, 0 AS lifetime, NULL::text[] AS last_checkin, NULL::text AS tier, 1 AS tier_multiplier
                  FROM {tenant.s}.events e JOIN {tenant.s}.members m ON m.id = e.member_id
                 WHERE e.type = $1 AND e.occurred_at >= $2 AND e.occurred_at < $3
                 ORDER BY e.occurred_at, e.id LIMIT $4""",
            draft.trigger,
            to_utc(request.start),
            to_utc(request.end),
            BACKTEST_LIMIT + 1,
        )
    truncated = len(rows) > BACKTEST_LIMIT
    given: dict[str, list[tuple[datetime, int]]] = {}
    spent = 0
    days: dict[str, list[int]] = {}
    deadline = time.monotonic() + BACKTEST_SECONDS
    for n, row in enumerate(rows[:BACKTEST_LIMIT]):
        if time.monotonic() > deadline:
            truncated = True
            break
        if n % 256 == 255:
            await asyncio.sleep(0)  # judging here holds the event loop: let others in
        occurred: datetime = row["occurred_at"]
        w = engine.windows(occurred, zone)
        history = given.setdefault(row["member_id"], [])

        def within(
            span: tuple[datetime, datetime], history: list[tuple[datetime, int]] = history
        ) -> int:
            return sum(p for at, p in history if span[0] <= at < span[1])

        usage = engine.Usage(
            within(w.day), within(w.week), within(w.month), sum(p for _, p in history), spent
        )
        event = {
            "type": row["type"],
            "occurred_at": occurred,
            "data": msgspec.json.decode(row["data"]),
        }
        day = days.setdefault(occurred.astimezone(zone).date().isoformat(), [0, 0, 0])
        day[0] += 1
        candidate = rule
        if isinstance(draft.effect, schemas.MultiplierEffect):
            # A campaign multiplies what the live rules gave that event: judge that bonus.
            bonus = Decimal(row["base"]) * (Decimal(draft.effect.factor) - 1)
            points = int(bonus.to_integral_value(rounding=ROUND_FLOOR))
            if points < 1:
                continue
            candidate = replace(rule, effect=schemas.FixedEffect(points=points))
        try:
            [(_, verdict)] = await _evaluate(
                [candidate],
                event=event,
                member=_member_view(row, occurred.astimezone(zone).date()),
                zone=zone,
                usage={"rule_draft": usage},
            )
        except engine.PointsOutOfRange:
            continue  # a stored amount worth more points than any ledger holds: none given
        if verdict.fired:
            day[1] += 1
            day[2] += verdict.points
            history.append((occurred, verdict.points))
            spent += verdict.points
    value, unit = Decimal(settings["point_value"]), Decimal(1).scaleb(-settings["digits"])

    def money(points: int) -> str:
        """Points' worth in the currency, with exactly its minor-unit digits (half up)."""
        with localcontext(prec=60):  # 100,000 events of 2^53 points fit
            return str((value * points).quantize(unit, rounding=ROUND_HALF_UP))

    return schemas.BacktestOut(
        rule=draft.name,
        currency=settings["currency"],
        days=[schemas.BacktestDay(d, n, f, p, money(p)) for d, (n, f, p) in sorted(days.items())],
        events=sum(n for n, _, _ in days.values()),
        points=spent,
        liability=money(spent),
        truncated=truncated,
    )
