from datetime import datetime
from typing import Annotated, Literal

import msgspec

from pointsmall.auth.principal import SCOPES
from pointsmall.schemas import Name

Scope = Literal[
    "points:read", "points:write", "catalog:read", "catalog:write", "orders:write", "admin"
]
assert set(Scope.__args__) == set(SCOPES)  # type: ignore[attr-defined]


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name = "API key"
    mode: Literal["test", "live"] = "test"
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=len(SCOPES))] = (
        msgspec.field(default_factory=lambda: ["admin"])
    )


class ApiKeyOut(msgspec.Struct):
    id: str
    name: str
    mode: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    object: str = "api_key"


class ApiKeyCreated(ApiKeyOut):
    """Returned once, at creation: `secret` is the whole key and is never shown again."""

    secret: str = ""
