"""Field types shared by every request body: bounded, NUL-free text and list pages."""

from typing import Annotated, Any, Generic, TypeVar

import msgspec

# Postgres text cannot hold NUL; reject it at the edge rather than fail in the database.
_NO_NUL = r"^[^\x00]*$"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_NO_NUL)]
ShortText = Annotated[str, msgspec.Meta(max_length=500, pattern=_NO_NUL)]
ExternalId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
]
# Whitespace and controls spelled out: `\s` differs between Python's and JavaScript's
# regular expressions (\x1c-\x1f, \x85), and the document's pattern must mean what ours does.
_EMAIL_PART = r"[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
Email = Annotated[
    str,
    msgspec.Meta(
        max_length=254,
        pattern=rf"^{_EMAIL_PART}{{1,64}}@{_EMAIL_PART}+\.{_EMAIL_PART}+$",
    ),
]
AttributeKey = Annotated[
    str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$")
]
AttributeValue = ShortText | int | float | bool | None
# Like Stripe's metadata: flat, at most 50 keys, short values.
Attributes = Annotated[dict[AttributeKey, AttributeValue], msgspec.Meta(max_length=50)]

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T]):
    """A cursor page: pass `next_cursor` as `starting_after` for the next one."""

    data: list[T]
    has_more: bool
    next_cursor: str | None


# `Attributes` (and any object as flat) as JSON Schema says it: the generator leaves out the
# keys' pattern and the values' bounds, and writes the values as a `oneOf` that an integer
# (both `integer` and `number`) fails.
FLAT_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": 50,
    "propertyNames": {"minLength": 1, "maxLength": 40, "pattern": r"^[A-Za-z0-9_.:-]+$"},
    "additionalProperties": {
        "anyOf": [
            {"type": "string", "maxLength": 500, "pattern": r"^[^\x00]*$"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
        ]
    },
}
