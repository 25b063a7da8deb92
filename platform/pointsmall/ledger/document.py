"""What a request body's fields cannot say each on its own, in the OpenAPI document.

Rules between fields (a policy that needs another field, one of two ids) are JSON Schema
2020-12 conditionals, added to a route's request body as `allOf: [<the body>, *rules]`. The
server refuses exactly those bodies with 422 (the services check the same rules)."""

from dataclasses import dataclass
from typing import Any, cast

from litestar.openapi.spec import Operation, RequestBody, Schema

Rule = dict[str, Any]


def given(field: str) -> Rule:
    """The field is there and not null."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


def absent(*fields: str) -> Rule:
    """The fields are left out or null."""
    return {"properties": {field: {"type": "null"} for field in fields}}


def is_value(field: str, value: str, *, or_absent: bool = False) -> Rule:
    """The field is `value` (or, with `or_absent`, left out: its default is `value`)."""
    rule: Rule = {"properties": {field: {"const": value}}}
    return rule if or_absent else {"required": [field], **rule}


def all_of(*rules: Rule) -> Rule:
    return rules[0] if len(rules) == 1 else {"allOf": list(rules)}


def with_body_rules(rules: list[Rule]) -> type[Operation]:
    """An operation class whose request body's schema carries `rules` too."""

    @dataclass
    class _Operation(Operation):
        def __post_init__(self) -> None:
            if isinstance(self.request_body, RequestBody):
                for media in self.request_body.content.values():
                    if media.schema is not None:
                        extra = cast(list[Schema], rules)
                        media.schema = Schema(all_of=[media.schema, *extra])

    return _Operation
