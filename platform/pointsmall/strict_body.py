"""Checks every request passes before its handler runs.

- Strict JSON bodies: `"10"` is not an integer and `"true"` is not a boolean. Litestar
  converts request bodies with msgspec's lax rules (strings coerced to numbers and
  booleans). A wrong type is a client bug the client wants to hear about, so the body is
  decoded once more, strictly, against the handler's declared `data` type; a mismatch is a
  422 naming the field. Bytes that are not UTF-8 are a 422 too.
- No NUL anywhere: PostgreSQL text and jsonb cannot hold U+0000, so a NUL in a JSON string
  (free-form `data` included), a query value or a path id is refused here — 422 naming the
  field, or 404 for a path id (no object has such an id) — instead of failing in the driver.
- Bounded nesting: at most MAX_DEPTH levels of arrays and objects.
- A body is JSON only when it says so: another (or no) `Content-Type` is a 415.
"""

from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler

from pointsmall.errors import NotFound

_NUL = "\x00"
# Deeper JSON is no real request's shape (attributes are flat, event data a few levels), and
# the decoder recurses: 1,000 levels overflowed its stack.
MAX_DEPTH = 32


@cache
def _decoder(handler: HTTPRouteHandler) -> tuple[msgspec.json.Decoder[Any], bool, Any] | None:
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is None:
        return None
    return msgspec.json.Decoder(field.annotation), field.is_optional, field.annotation


def _integral_floats_as_ints(value: Any) -> Any:
    """`1.0` as `1`: JSON has one number type, and JSON Schema counts 1.0 as an integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    return value


def _strictly(decoder: msgspec.json.Decoder[Any], annotation: Any, body: bytes) -> None:
    """Decode strictly; an integral float where an integer belongs is still an integer (the
    handler's own lax decoding makes it one)."""
    try:
        decoder.decode(body)
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise
        msgspec.convert(_integral_floats_as_ints(msgspec.json.decode(body)), annotation)


def _invalid(field: str, message: str) -> ValidationException:
    # The field may be a name the client sent with a NUL in it: name it, escaped, since the
    # answer's own strings never hold one.
    return ValidationException(
        detail="The request is invalid.",
        extra=[{"key": field.replace(_NUL, "\\u0000"), "message": message}],
    )


def _problem_at(value: Any, path: str, depth: int = 1) -> tuple[str, str] | None:
    """The first place (path, message) where a string or key holds a NUL, or where the
    nesting goes deeper than MAX_DEPTH."""
    if isinstance(value, str):
        return (path, "may not contain NUL (U+0000)") if _NUL in value else None
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        return (path or "body", f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _NUL in key:
                return (where, "may not contain NUL (U+0000)")
            found = _problem_at(item, where, depth + 1)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _problem_at(item, f"{path}[{index}]", depth + 1)
            if found is not None:
                return found
    return None


def _check_path_and_query(request: Request[Any, Any, Any]) -> None:
    if any(isinstance(v, str) and _NUL in v for v in request.path_params.values()):
        raise NotFound("No such object.")
    for name, value in request.query_params.items():
        if _NUL in value or _NUL in name:
            raise _invalid(name, "may not contain NUL (U+0000)")


async def check_request(request: Request[Any, Any, Any]) -> None:
    _check_path_and_query(request)
    found = _decoder(request.route_handler)
    if found is None:
        return
    decoder, optional, annotation = found
    body = await request.body()
    if optional and not body:
        return
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if body and not (media_type == "application/json" or media_type.endswith("+json")):
        raise HTTPException(
            status_code=415,
            detail="Send the body as JSON with 'Content-Type: application/json'.",
        )
    try:
        _strictly(decoder, annotation, body)
    except UnicodeDecodeError as exc:
        raise _invalid("body", "the body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise _invalid("body", f"nested more than {MAX_DEPTH} levels deep") from exc
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationException(
            detail="The request body is invalid.", extra=[{"message": str(exc)}]
        ) from exc
    # JSON carries a NUL only as this escape, and cannot nest deeper than it has brackets:
    # most bodies need no closer look.
    if b"\\u0000" in body or body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        problem = _problem_at(msgspec.json.decode(body), "")
        if problem is not None:
            raise _invalid(*problem)
