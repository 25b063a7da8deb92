"""The served OpenAPI document, finished so that it says exactly what the server does.

Litestar describes each handler; what the house adds around every handler it cannot know:
bodies that refuse unknown fields, the edge's own answers (413 before a body is read, 415
for a body that is not JSON, 422 for bad input, 503 when the database is away), the
`Idempotency-Key` every POST accepts, and the headers every answer carries. Its default
400 (`{status_code, detail, extra}`) never happens here: bad bodies are 422 problems.
"""

from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin

from pointsmall.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_EDGE = {
    409: ("idempotency_conflict", "The Idempotency-Key was used with another request"),
    413: ("payload_too_large", "The body is larger than the limit (1 MiB); it was not read"),
    415: ("unsupported_media_type", "The body is not sent as application/json"),
    422: ("validation_error", "The body, query or a header is invalid"),
    503: ("service_unavailable", "The database is not reachable; retry with the same key"),
}
_HEADERS = {
    "X-Request-Id": {
        "description": "The request's id (the caller's sane X-Request-Id, or a new one).",
        "schema": {"type": "string"},
    },
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with "
        "the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes the POST safe to retry: the same key and body give the stored "
    "answer (header `Idempotent-Replayed: true`); the same key with another body is 409 "
    "`idempotency_conflict`. Kept 24 hours, per tenant.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


def _strict_structs() -> dict[str, type[msgspec.Struct]]:
    """Every Struct that refuses unknown fields, by name."""
    found: dict[str, type[msgspec.Struct]] = {}
    pending: list[type[msgspec.Struct]] = [msgspec.Struct]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__struct_config__.forbid_unknown_fields and cls.__module__.startswith("pointsmall"):
            found[cls.__name__] = cls
    return found


def _problem(status: int, code: str, description: str) -> dict[str, Any]:
    example = {
        "type": PROBLEM_BASE + code,
        "title": description,
        "status": status,
        "code": code,
        "detail": description + ".",
    }
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF, "example": example}},
    }


def _has_input(operation: dict[str, Any]) -> bool:
    return "requestBody" in operation or any(
        p.get("in") in ("query", "header") for p in operation.get("parameters", [])
    )


_NO_NUL = "^[^\\u0000]*$"


def _no_nul_in_strings(node: Any) -> None:
    """Every string the server takes refuses U+0000 (PostgreSQL cannot hold it): say so on
    each string schema that has no pattern, enum or format of its own."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "enum", "const", "format"} & set(node):
            node["pattern"] = _NO_NUL
        for value in node.values():
            _no_nul_in_strings(value)
    elif isinstance(node, list):
        for value in node:
            _no_nul_in_strings(value)


def _item_constraints(cls: type[msgspec.Struct]) -> dict[str, dict[str, Any]]:
    """Constraints on the string items of each list field (Litestar's schema drops them)."""
    found: dict[str, dict[str, Any]] = {}
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        kinds = [field.type, *getattr(field.type, "types", ())]
        for kind in kinds:
            item = getattr(kind, "item_type", None)
            if isinstance(kind, msgspec.inspect.ListType) and isinstance(
                item, msgspec.inspect.StrType
            ):
                limits = {
                    "pattern": item.pattern,
                    "minLength": item.min_length,
                    "maxLength": item.max_length,
                }
                found[field.encode_name] = {k: v for k, v in limits.items() if v is not None}
    return found


def _constrain_items(component: dict[str, Any], cls: type[msgspec.Struct]) -> None:
    for name, limits in _item_constraints(cls).items():
        prop = component.get("properties", {}).get(name, {})
        for variant in [prop, *prop.get("oneOf", [])]:
            if variant.get("type") == "array" and isinstance(variant.get("items"), dict):
                variant["items"].update(limits)


def finish(schema: dict[str, Any]) -> None:
    """Complete the document in place (see the module's docstring)."""
    for name, component in schema.get("components", {}).get("schemas", {}).items():
        if name not in ("Problem", "FieldError"):  # a problem may quote what was refused
            _no_nul_in_strings(component)
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                _no_nul_in_strings(operation.get("parameters", []))
                _no_nul_in_strings(operation.get("requestBody", {}))
    strict = _strict_structs()
    for name, component in schema.get("components", {}).get("schemas", {}).items():
        if name in strict and component.get("type") == "object":
            component["additionalProperties"] = False
            _constrain_items(component, strict[name])
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            responses.pop("400", None)
            wanted: list[int] = []
            if method == "post":
                wanted.append(409)  # any POST: its Idempotency-Key may have been used before
            if "requestBody" in operation:
                wanted += [413, 415]
            if _has_input(operation) or method == "post":
                wanted.append(422)
            if path.startswith("/v1") or path == "/signup":
                wanted.append(503)
            for status in wanted:
                if str(status) not in responses:
                    responses[str(status)] = _problem(status, *_EDGE[status])
            if method == "post":
                params = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in params):
                    params.append(IDEMPOTENCY_KEY)
            for code, response in responses.items():
                headers = response.setdefault("headers", {})
                headers.update(_HEADERS)
                if method == "post" and code.startswith("2"):
                    headers.update(_REPLAYED)
                if code in ("429", "503"):
                    headers.update(_RETRY_AFTER)


def finish_on_startup(app: Litestar) -> None:
    """Build the document once and finish it before anyone reads it."""
    finish(app.plugins.get(OpenAPIPlugin).provide_openapi_schema())
