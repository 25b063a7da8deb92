from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from pointsmall.auth.middleware import requires
from pointsmall.auth.principal import Principal
from pointsmall.deps import Session
from pointsmall.errors import FieldError, InvalidInput, problem_responses
from pointsmall.idempotency.middleware import NATIVE, REPLAYED_HEADER, Idempotency
from pointsmall.ledger import schemas, services
from pointsmall.ledger.document import with_body_rules
from pointsmall.pagination import KeyCursor, Limit, StartingAfter
from pointsmall.schemas import Page

AuthRequest = Request[Principal, str, Any]
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422)


def _answer(written: services.Written) -> Response[schemas.Transaction]:
    headers = {REPLAYED_HEADER: "true"} if written.replayed else {}
    return Response(written.transaction, status_code=written.status, headers=headers)


def _context(request: AuthRequest) -> tuple[Any, str, Idempotency]:
    idem = request.state.get("idempotency") or Idempotency()
    return request.app.state.hot_pool, request.user.schema, idem


class PointsController(Controller):
    path = "/points"
    tags = ["Ledger"]

    @post(
        "/earn",
        guards=[requires("points:write")],
        opt=NATIVE,
        responses=WRITE_ERRORS,
        status_code=201,
    )
    async def earn(
        self, request: AuthRequest, data: JSONBody[schemas.EarnCreate]
    ) -> Response[schemas.Transaction]:
        """Credit points (pending first if the point type says so)."""
        engine, schema, idem = _context(request)
        return _answer(
            await services.earn(
                engine, schema, data, granted_by=request.user.credential_id, idem=idem
            )
        )

    @post(
        "/spend",
        guards=[requires("points:write")],
        opt=NATIVE,
        responses=WRITE_ERRORS,
        status_code=201,
    )
    async def spend(
        self, request: AuthRequest, data: JSONBody[schemas.SpendCreate]
    ) -> Response[schemas.Transaction]:
        """Debit points, soonest-expiring first; 409 `insufficient_points` if short."""
        engine, schema, idem = _context(request)
        return _answer(
            await services.spend(
                engine, schema, data, granted_by=request.user.credential_id, idem=idem
            )
        )

    @post(
        "/adjust", guards=[requires("admin")], opt=NATIVE, responses=WRITE_ERRORS, status_code=201
    )
    async def adjust(
        self, request: AuthRequest, data: JSONBody[schemas.AdjustCreate]
    ) -> Response[schemas.Transaction]:
        """A staff correction: a signed amount with a reason."""
        engine, schema, idem = _context(request)
        return _answer(
            await services.adjust(
                engine, schema, data, granted_by=request.user.credential_id, idem=idem
            )
        )


class TransactionController(Controller):
    path = "/transactions"
    tags = ["Ledger"]

    @post(
        "/{transaction_id:str}/reverse",
        guards=[requires("points:write")],
        opt=NATIVE,
        responses=WRITE_ERRORS,
        status_code=201,
    )
    async def reverse(
        self,
        request: AuthRequest,
        transaction_id: FromPath[str],
        data: JSONBody[schemas.ReverseCreate | None] = None,
    ) -> Response[schemas.Transaction]:
        """Reverse a whole earn, spend or adjustment (refunds, mistakes). Once only."""
        engine, schema, idem = _context(request)
        written = await services.reverse(
            engine,
            schema,
            transaction_id,
            data or schemas.ReverseCreate(),
            granted_by=request.user.credential_id,
            idem=idem,
        )
        return _answer(written)

    @post(
        "/{transaction_id:str}/release",
        guards=[requires("points:write")],
        opt=NATIVE,
        responses=problem_responses(401, 403, 404, 409),
        status_code=201,
    )
    async def release(
        self, request: AuthRequest, transaction_id: FromPath[str]
    ) -> Response[schemas.Transaction]:
        """Make an earn's pending points available now (point types with `manual` pending).
        The answer is the `release` transaction, whose `points` became available; 409
        `already_released`, `already_reversed` or `not_pending` when there is nothing to
        release."""
        engine, schema, idem = _context(request)
        return _answer(await services.release(engine, schema, transaction_id, idem=idem))


# An RFC 3339 instant with its offset, as the document says (the query parser would also take
# a bare number as seconds since 1970). Year 0000 is RFC 3339 but no year Python has.
_INSTANT: dict[str, Any] = {
    "pattern": r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}"
    r"T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$",
    "max_length": 35,
    "schema_extra": {"format": "date-time"},
}
_GTE = "Only transactions created at or after this instant (RFC 3339, with an offset)."
_LT = "Only transactions created before this instant (RFC 3339, with an offset)."


def _instant(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return schemas.to_utc(datetime.fromisoformat(value))
    except ValueError:
        raise InvalidInput(errors=[FieldError(field=name, message="not a valid instant")]) from None


class MemberLedgerController(Controller):
    path = "/members/{member_id:str}"
    tags = ["Ledger"]

    @get("/balance", guards=[requires("points:read")], responses=problem_responses(401, 403, 404))
    async def balance(self, session: Session, member_id: FromPath[str]) -> schemas.MemberBalance:
        """Available, pending and lifetime points per point type, and the next expiring buckets."""
        return await services.balance(session, member_id)

    @get(
        "/transactions",
        guards=[requires("points:read")],
        responses=problem_responses(401, 403, 404, 422),
    )
    async def transactions(
        self,
        session: Session,
        member_id: FromPath[str],
        limit: Limit = 20,
        starting_after: StartingAfter = None,
        kind: FromQuery[
            Literal["earn", "spend", "adjust", "reverse", "expire", "release", "clawback"] | None
        ] = None,
        created_gte: Annotated[
            str | None, QueryParameter(name="created[gte]", description=_GTE, **_INSTANT)
        ] = None,
        created_lt: Annotated[
            str | None, QueryParameter(name="created[lt]", description=_LT, **_INSTANT)
        ] = None,
    ) -> Page[schemas.Transaction]:
        """The member's ledger history, newest first; filter by kind and creation time."""
        return await services.history(
            session,
            member_id,
            limit=limit,
            starting_after=starting_after,
            kind=kind,
            created_gte=_instant("created[gte]", created_gte),
            created_lt=_instant("created[lt]", created_lt),
        )


class PointTypeController(Controller):
    path = "/point-types"
    tags = ["Ledger"]

    @get("/", guards=[requires("points:read")], responses=problem_responses(401, 403, 422))
    async def list_point_types(
        self, session: Session, limit: Limit = 20, starting_after: KeyCursor = None
    ) -> Page[schemas.PointTypeOut]:
        """Point types in key order; `starting_after` is the last key of the previous page."""
        return await services.list_point_types(session, limit, starting_after)

    @post(
        "/",
        guards=[requires("admin")],
        operation_class=with_body_rules(schemas.POINT_TYPE_CREATE_RULES),
        responses=problem_responses(401, 403, 409, 422),
    )
    async def create_point_type(
        self, session: Session, data: JSONBody[schemas.PointTypeCreate]
    ) -> schemas.PointTypeOut:
        """A point type with its expiry and pending policies; 409 `point_type_exists`; 422
        when a policy lacks a field it needs or is given one it does not use (the rules are
        in the body's schema)."""
        return await services.create_point_type(session, data)

    @patch(
        "/{key:str}",
        guards=[requires("admin")],
        operation_class=with_body_rules(schemas.POINT_TYPE_UPDATE_RULES),
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    async def update_point_type(
        self, session: Session, key: FromPath[str], data: JSONBody[schemas.PointTypeUpdate]
    ) -> schemas.PointTypeOut:
        """Change a point type's name, expiry or pending policy (the default `points` type
        too). A policy sent is checked as on create (422); a policy's fields sent without it
        must fit the stored policy (409 `policy_mismatch`). Credits from now on follow the
        new policy; points already credited keep the expiry and availability they were
        given."""
        return await services.update_point_type(session, key, data)
