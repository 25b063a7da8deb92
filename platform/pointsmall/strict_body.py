"""Strict JSON bodies: `"10"` is not an integer and `"true"` is not a boolean.

Litestar converts request bodies with msgspec's lax rules (strings coerced to numbers and
booleans). A wrong type is a client bug the client wants to hear about, so before the
handler runs, the body is decoded once more, strictly, against the handler's declared
`data` type; a mismatch is a 422 naming the field.
"""

from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler


@cache
def _decoder(handler: HTTPRouteHandler) -> tuple[msgspec.json.Decoder[Any], bool] | None:
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is None:
        return None
    return msgspec.json.Decoder(field.annotation), field.is_optional


async def check_body(request: Request[Any, Any, Any]) -> None:
    found = _decoder(request.route_handler)
    if found is None:
        return
    decoder, optional = found
    body = await request.body()
    if optional and not body:
        return
    try:
        decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationException(
            detail="The request body is invalid.", extra=[{"message": str(exc)}]
        ) from exc
