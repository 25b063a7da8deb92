from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from pointsmall.auth.middleware import requires
from pointsmall.auth.principal import Principal
from pointsmall.deps import Session
from pointsmall.errors import problem_responses
from pointsmall.idempotency.middleware import NATIVE, REPLAYED_HEADER, Idempotency
from pointsmall.ledger.document import with_body_rules
from pointsmall.pagination import KeyCursor, Limit, StartingAfter
from pointsmall.rules import events, schemas, services
from pointsmall.schemas import Page

AuthRequest = Request[Principal, str, Any]
TierChangeCursor = Annotated[
    str | None,
    QueryParameter(
        max_length=22,
        pattern=r"^tch_[1-9][0-9]{0,17}$",
        description="A cursor: the last id of the previous page.",
    ),
]


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

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403, 422))
    async def list_rules(
        self,
        session: Session,
        limit: Limit = 20,
        starting_after: StartingAfter = None,
        status: Annotated[
            Literal["active", "inactive"] | None,
            QueryParameter(description="Only the active, or the inactive, rules."),
        ] = None,
    ) -> Page[schemas.RuleOut]:
        """Rules, newest first; deleted rules are not listed."""
        return await services.list_rules(session, limit, starting_after, status)

    @post(
        "/",
        operation_class=with_body_rules(schemas.RULE_RULES),
        guards=[requires("admin")],
        responses=problem_responses(401, 403, 409, 422),
    )
    async def create_rule(
        self, session: Session, data: JSONBody[schemas.RuleCreate]
    ) -> schemas.RuleOut:
        """A rule; its condition is compiled now (a bad one is a 422 with CEL's message); a
        point type that does not exist is a 409 `unknown_point_type`."""
        return await services.create_rule(session, data)

    @get(
        "/{rule_id:str}",
        guards=[requires("points:read")],
        responses=problem_responses(401, 403, 404),
    )
    async def get_rule(self, session: Session, rule_id: FromPath[str]) -> schemas.RuleOut:
        """A rule (404 once deleted)."""
        return await services.get_rule(session, rule_id)

    @patch(
        "/{rule_id:str}",
        guards=[requires("admin")],
        operation_class=with_body_rules(schemas.RULE_RULES),
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    async def update_rule(
        self, session: Session, rule_id: FromPath[str], data: JSONBody[schemas.RuleUpdate]
    ) -> schemas.RuleOut:
        """Changing what the rule does makes a new version; credits keep naming the old one.
        `status` switches it off and on (inactive rules are kept and listed). A point type
        that does not exist is a 409 `unknown_point_type`."""
        return await services.update_rule(session, rule_id, data)

    @delete(
        "/{rule_id:str}",
        status_code=200,
        guards=[requires("admin")],
        responses=problem_responses(401, 403, 404),
    )
    async def delete_rule(self, session: Session, rule_id: FromPath[str]) -> schemas.RuleDeleted:
        """Delete the rule: it judges no more events, and GET, PATCH and DELETE of it are
        404. Its versions stay in the ledger's history (credits name them). To switch a rule
        off and keep it, PATCH its `status` to `inactive`."""
        return await services.delete_rule(session, rule_id)

    @post(
        "/simulate",
        status_code=200,
        guards=[requires("points:read")],
        operation_class=with_body_rules(schemas.SIMULATE_RULES),
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
        operation_class=with_body_rules(schemas.DRAFT_RULES),
        responses=problem_responses(401, 403, 422),
    )
    async def backtest(
        self, request: AuthRequest, data: JSONBody[schemas.BacktestRequest]
    ) -> schemas.BacktestOut:
        """What a draft rule would have issued, per day, over the stored events of a period,
        and the liability it would have added. Writes nothing."""
        return await events.backtest(request.app.state.hot_pool, request.user.schema, data)


_REPLAY = {
    200: ResponseSpec(
        data_container=schemas.EventOut,
        description="A duplicate (the same order id, refund id, referee or Idempotency-Key): "
        "the first answer, unchanged, with `Idempotent-Replayed: true`; nothing is credited.",
    )
}


class EventController(Controller):
    path = "/events"
    tags = ["Rules"]

    @post(
        "/",
        guards=[requires("points:write")],
        opt=NATIVE,
        status_code=201,
        operation_class=with_body_rules(schemas.EVENT_RULES),
        responses=_REPLAY | problem_responses(401, 403, 404, 409, 422),
    )
    async def record(
        self, request: AuthRequest, data: JSONBody[schemas.EventCreate]
    ) -> Response[schemas.EventOut]:
        """Record an event; the rules turn it into points (201). The same order id (or
        Idempotency-Key) again returns the first answer with 200 and credits nothing more.
        404 for an unknown member, or an order.refunded whose order was not paid; 409 when
        the same event is being recorded at once, a check-in repeats, or the ledger refuses
        (a clawback of spent points, a balance over its limit)."""
        return await _record(request, data)


class CheckInController(Controller):
    path = "/checkins"
    tags = ["Rules"]

    @post(
        "/",
        guards=[requires("points:write")],
        opt=NATIVE,
        status_code=201,
        operation_class=with_body_rules([schemas.ONE_MEMBER]),
        responses=_REPLAY | problem_responses(401, 403, 404, 409, 422),
    )
    async def check_in(
        self, request: AuthRequest, data: JSONBody[schemas.CheckInCreate]
    ) -> Response[schemas.EventOut]:
        """Check a member in for today (the tenant's time zone): a `checkin` event whose
        `data.streak` (and `member.streak`) counts consecutive days; 409 `already_checked_in`;
        the same Idempotency-Key again is the first answer with 200."""
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

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403, 404, 422))
    async def list_tiers(
        self, session: Session, limit: Limit = 20, starting_after: KeyCursor = None
    ) -> Page[schemas.TierOut]:
        """The tier ladder: threshold ascending, then key. `starting_after` is the last key
        of the previous page (404 if no tier has it)."""
        return await services.list_tiers(session, limit, starting_after)

    @post(
        "/",
        guards=[requires("admin")],
        operation_class=with_body_rules(schemas.TIER_RULES),
        responses=problem_responses(401, 403, 409, 422),
    )
    async def create_tier(
        self, session: Session, data: JSONBody[schemas.TierCreate]
    ) -> schemas.TierOut:
        """A tier: threshold, basis, window, earn multiplier, retention and benefits."""
        return await services.create_tier(session, data)


class MemberTierController(Controller):
    path = "/members/{member_id:str}/tier-history"
    tags = ["Tiers"]

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403, 404, 422))
    async def history(
        self,
        session: Session,
        member_id: FromPath[str],
        limit: Limit = 20,
        starting_after: TierChangeCursor = None,
    ) -> Page[schemas.TierChangeOut]:
        """The member's tier changes, newest first (the order they were made)."""
        return await services.tier_history(session, member_id, limit, starting_after)
