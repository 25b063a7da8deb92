"""RFC 9457 problem+json for every error, each with a stable machine-readable `code`."""

import logging
import re
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("pointsmall.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://docs.pointsmall.dev/errors/"


class FieldError(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    code: str
    detail: str = ""
    errors: list[FieldError] = msgspec.field(default_factory=list)


class ApiError(Exception):
    """An error the API answers with on purpose: a status, a stable code and a sentence."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.status = status or self.status
        self.code = code or self.code
        self.title = title or self.title
        self.errors = errors or []
        self.headers = headers or {}


class NotFound(ApiError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(ApiError):
    status, code, title = 409, "conflict", "Conflict"


class Unauthorized(ApiError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(ApiError):
    status, code, title = 403, "forbidden", "Forbidden"


class InvalidInput(ApiError):
    status, code, title = 422, "validation_error", "Validation failed"


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def make_problem(
    status: int, code: str, title: str, detail: str = "", errors: list[FieldError] | None = None
) -> Problem:
    return Problem(
        type=PROBLEM_BASE + code,
        title=title,
        status=status,
        code=code,
        detail=detail or title,  # every problem says something a person can read
        errors=errors or [],
    )


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
    problem = make_problem(exc.status, exc.code, exc.title, exc.detail, exc.errors)
    return problem_response(problem, exc.headers)


_KEY_IN_MESSAGE = re.compile(r"at `\$\.?([^`]*)`")


def _field_errors(extra: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        key = item.get("key")
        if not key:
            match = _KEY_IN_MESSAGE.search(message)
            key = match.group(1) if match else item.get("source") or "body"
        message = _KEY_IN_MESSAGE.sub("", message).rstrip(" -")
        field = "body" if key == "data" else str(key)  # Litestar names the whole body `data`
        errors.append(FieldError(field=field, message=message))
    return errors


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = _field_errors(exc.extra) or [FieldError(field="body", message=exc.detail)]
    problem = make_problem(
        422, "validation_error", "Validation failed", "The request is invalid.", errors
    )
    return problem_response(problem)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 400:
        # Litestar answers undecodable bodies with 400; to a client they are invalid input.
        return _validation(_, ValidationException(detail=exc.detail, extra=exc.extra))
    code = _HTTP_CODES.get(status, "error" if status < 500 else "internal_error")
    if isinstance(exc, NotAuthorizedException):
        code = "unauthorized"
    elif isinstance(exc, PermissionDeniedException):
        code = "forbidden"
    detail = exc.detail if status < 500 else "An internal error occurred."
    problem = make_problem(status, code, code.replace("_", " ").capitalize(), detail)
    return problem_response(problem, dict(exc.headers or {}))


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a database error, whichever layer wraps it."""
    seen: BaseException | None = exc
    while seen is not None:
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str):
            return state
        seen = getattr(seen, "orig", None) or seen.__cause__
    return ""


# Database refusals a client caused, by constraint name: (status, code, detail).
_CONSTRAINTS = {
    "ck_balances_within_limit": (
        409,
        "balance_limit_exceeded",
        f"The member's balance would exceed {2**53} points, the most any JSON client reads "
        "exactly.",
    ),
}


def constraint_name(exc: BaseException) -> str:
    """The name of the constraint a database error names, whichever layer wraps it."""
    seen: BaseException | None = exc
    while seen is not None:
        name = getattr(seen, "constraint_name", None)
        if isinstance(name, str):
            return name
        seen = getattr(seen, "orig", None) or seen.__cause__
    return ""


# SQLSTATEs that mean "the database is away for now": connection failures (class 08),
# shutdown and start-up (57P01-57P03), too many connections (53300).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
RETRY_AFTER = {"Retry-After": "1"}


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database (or the network to it) is away, not that the
    request was wrong: the client should retry the same request shortly."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(
            seen, OSError | asyncpg.InterfaceError | sa_exc.TimeoutError | TimeoutError
        ) or (isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return sqlstate(exc).startswith(_UNAVAILABLE_STATES)


def unavailable_problem() -> Problem:
    return make_problem(
        503,
        "service_unavailable",
        "Service unavailable",
        "The database is not reachable right now; retry the same request (with the same "
        "Idempotency-Key) shortly.",
    )


def database_problem(exc: BaseException) -> Problem:
    """The answer to a database error, from the driver or through SQLAlchemy."""
    if is_unavailable(exc):
        return unavailable_problem()
    state = sqlstate(exc)
    known = _CONSTRAINTS.get(constraint_name(exc))
    if known is not None:
        status, code, detail = known
        return make_problem(status, code, "Conflict", detail)
    if state.startswith("22"):  # data exception: a value Postgres cannot hold
        return make_problem(
            422,
            "validation_error",
            "Validation failed",
            "A value is not acceptable.",
            [FieldError(field="body", message="a value is out of range or malformed")],
        )
    if state in ("40001", "40P01", "55P03"):  # serialization failure, deadlock, lock timeout
        return make_problem(409, "retry_conflict", "Conflict", "Concurrent change; retry.")
    if state.startswith("23"):
        return make_problem(409, "conflict", "Conflict", "The change conflicts with data.")
    log.exception("database error", exc_info=exc)
    return make_problem(500, "internal_error", "Internal error", "An internal error occurred.")


def _database(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    problem = database_problem(exc)
    return problem_response(problem, RETRY_AFTER if problem.status == 503 else None)


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if is_unavailable(exc):  # e.g. a pool timeout or a refused connection at checkout
        log.warning("database unavailable: %s", type(exc).__name__)
        return problem_response(unavailable_problem(), RETRY_AFTER)
    log.exception("unhandled error", exc_info=exc)
    problem = make_problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal error",
        "An internal error occurred.",
    )
    return problem_response(problem)


exception_handlers: dict[Any, Any] = {
    ApiError: _api_error,
    ValidationException: _validation,
    HTTPException: _http,
    DBAPIError: _database,
    asyncpg.PostgresError: _database,
    asyncpg.InterfaceError: _database,
    OSError: _database,
    Exception: _unexpected,
}


_STATUS_TITLES = {
    401: ("unauthorized", "Missing, revoked or malformed credential"),
    403: ("forbidden", "The credential lacks the scope this needs"),
    404: ("not_found", "No such object (or it belongs to another tenant)"),
    409: ("conflict", "Conflicts with the current state or an earlier request"),
    422: ("validation_error", "The body or query is invalid"),
    502: ("payment_provider_error", "A payment provider failed; nothing changed"),
    503: ("service_unavailable", "The database is not reachable; retry with the same key"),
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems a route can answer with."""
    specs: dict[int, ResponseSpec] = {}
    for status in statuses:
        code, description = _STATUS_TITLES[status]
        specs[status] = ResponseSpec(
            data_container=Problem,
            description=description,
            media_type=PROBLEM_MEDIA_TYPE,
            examples=[
                Example(
                    value={
                        "type": PROBLEM_BASE + code,
                        "title": description,
                        "status": status,
                        "code": code,
                    }
                )
            ],
        )
    return specs
