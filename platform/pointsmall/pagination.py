"""Cursor pagination as API.md gives it: `limit` (1 to 100) and `starting_after=<id>`.

Lists of objects with ULID ids are newest first (`newest_first`); lists of objects named by
a key (point types) are in key order (`by_key`), the cursor being the last key."""

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from litestar.params import QueryParameter
from sqlalchemy import Select

from pointsmall.schemas import Page

T = TypeVar("T")
Out = TypeVar("Out")
# Any select, whatever its columns (rules list a rule with its version).
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])

Limit = Annotated[
    int, QueryParameter(ge=1, le=100, description="Page size, 1 to 100 (default 20).")
]
StartingAfter = Annotated[
    str | None,
    QueryParameter(
        max_length=64,
        pattern=r"^[a-z]+_[0-9a-z]{1,60}$",
        description="A cursor: the last id of the previous page.",
    ),
]
KeyCursor = Annotated[
    str | None,
    QueryParameter(
        max_length=40,
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="A cursor: the last key of the previous page.",
    ),
]


def newest_first(
    query: AnySelect, id_column: Any, limit: int, starting_after: str | None
) -> AnySelect:
    """Ids are time-ordered, so newest first is id descending; fetch one extra to see more."""
    if starting_after:
        query = query.where(id_column < starting_after)
    return query.order_by(id_column.desc()).limit(limit + 1)


def by_key(query: AnySelect, key_column: Any, limit: int, starting_after: str | None) -> AnySelect:
    """Key order (keys are unique): the page after `starting_after`, one extra to see more."""
    if starting_after:
        query = query.where(key_column > starting_after)
    return query.order_by(key_column).limit(limit + 1)


def to_page(
    rows: Sequence[T], limit: int, convert: Callable[[T], Out], id_of: Callable[[T], str]
) -> Page[Out]:
    has_more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        data=[convert(r) for r in rows],
        has_more=has_more,
        next_cursor=id_of(rows[-1]) if has_more and rows else None,
    )
