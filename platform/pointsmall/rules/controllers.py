from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody

from pointsmall.auth.middleware import requires
from pointsmall.auth.principal import Principal
from pointsmall.deps import Session
from pointsmall.errors import problem_responses
from pointsmall.idempotency.middleware import NATIVE, REPLAYED_HEADER, Idempotency
from pointsmall.rules import events, schemas, services

AuthRequest = Request[Principal, str, Any]


async def _record(request: AuthRequest, event: schemas.EventCreate) -> Response[schemas.EventOut]:
    """Record an event; a duplicate answers 200 with the first answer."""
    idem: Idempotency = request.state.get("idempotency") or Idempotency()
    out, replayed = await events.record_event(
        request.app.state.hot_pool, request.user.schema, event, idempotency_key=idem.key
    )
    headers = {REPLAYED_HEADER: "true"} if replayed else {}
    return Response(out, status_code=200 if replayed else 201, headers=headers)


class RuleController(Controller):
    path = "/rules"
    tags = ["Rules"]

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403))
    async def list_rules(self, session: Session) -> list[schemas.RuleOut]:
        return await services.list_rules(session)

    @post("/", guards=[requires("admin")], responses=problem_responses(401, 403, 422))
    async def create_rule(
        self, session: Session, data: JSONBody[schemas.RuleCreate]
    ) -> schemas.RuleOut:
        """A rule; its condition is compiled now (a bad one is a 422 with CEL's message)."""
        return await services.create_rule(session, data)

    @get(
        "/{rule_id:str}",
        guards=[requires("points:read")],
        responses=problem_responses(401, 403, 404),
    )
    async def get_rule(self, session: Session, rule_id: FromPath[str]) -> schemas.RuleOut:
        return await services.get_rule(session, rule_id)

    @patch(
        "/{rule_id:str}",
        guards=[requires("admin")],
        responses=problem_responses(401, 403, 404, 422),
    )
    async def update_rule(
        self, session: Session, rule_id: FromPath[str], data: JSONBody[schemas.RuleUpdate]
    ) -> schemas.RuleOut:
        """Changing what the rule does makes a new version; credits keep naming the old one."""
        return await services.update_rule(session, rule_id, data)

    @delete(
        "/{rule_id:str}",
        status_code=200,
        guards=[requires("admin")],
        responses=problem_responses(401, 403, 404),
    )
    async def delete_rule(self, session: Session, rule_id: FromPath[str]) -> schemas.RuleOut:
        """Deactivate the rule (its versions stay: credits name them)."""
        return await services.deactivate_rule(session, rule_id)

    @post(
        "/simulate",
        status_code=200,
        guards=[requires("points:read")],
        responses=problem_responses(401, 403, 404, 422),
    )
    async def simulate(
        self, request: AuthRequest, data: JSONBody[schemas.SimulateRequest]
    ) -> schemas.SimulateOut:
        """Judge an event against the live rules, or one draft, without writing anything."""
        return await events.simulate(request.app.state.hot_pool, request.user.schema, data)


class BacktestController(Controller):
    path = "/rules/backtest"
    tags = ["Rules"]

    @post(
        "/",
        status_code=200,
        guards=[requires("points:read")],
        responses=problem_responses(401, 403, 422),
    )
    async def backtest(
        self, request: AuthRequest, data: JSONBody[schemas.BacktestRequest]
    ) -> schemas.BacktestOut:
        """What a draft rule would have issued, per day, over the stored events of a period,
        and the liability it would have added. Writes nothing."""
        return await events.backtest(request.app.state.hot_pool, request.user.schema, data)


class EventController(Controller):
    path = "/events"
    tags = ["Rules"]

    @post(
        "/",
        guards=[requires("points:write")],
        opt=NATIVE,
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    async def record(
        self, request: AuthRequest, data: JSONBody[schemas.EventCreate]
    ) -> Response[schemas.EventOut]:
        """Record an event; the rules turn it into points. The same order id (or
        Idempotency-Key) again returns the first answer and credits nothing more."""
        return await _record(request, data)


class CheckInController(Controller):
    path = "/checkins"
    tags = ["Rules"]

    @post(
        "/",
        guards=[requires("points:write")],
        opt=NATIVE,
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    async def check_in(
        self, request: AuthRequest, data: JSONBody[schemas.CheckInCreate]
    ) -> Response[schemas.EventOut]:
        """Check a member in for today (the tenant's time zone): a `checkin` event whose
        `data.streak` (and `member.streak`) counts consecutive days; 409 `already_checked_in`."""
        event = schemas.EventCreate(
            type="checkin",
            occurred_at=data.occurred_at or datetime.now(UTC),
            member_id=data.member_id,
            member_external_id=data.member_external_id,
        )
        return await _record(request, event)


class TierController(Controller):
    path = "/tiers"
    tags = ["Tiers"]

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403))
    async def list_tiers(self, session: Session) -> list[schemas.TierOut]:
        return await services.list_tiers(session)

    @post("/", guards=[requires("admin")], responses=problem_responses(401, 403, 409, 422))
    async def create_tier(
        self, session: Session, data: JSONBody[schemas.TierCreate]
    ) -> schemas.TierOut:
        """A tier: threshold, basis, window, earn multiplier and retention."""
        return await services.create_tier(session, data)


class MemberTierController(Controller):
    path = "/members/{member_id:str}/tier-history"
    tags = ["Tiers"]

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403, 404))
    async def history(
        self, session: Session, member_id: FromPath[str]
    ) -> list[schemas.TierChangeOut]:
        """The member's tier changes, oldest first."""
        return await services.tier_history(session, member_id)
