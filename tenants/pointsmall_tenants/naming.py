"""Tenant schema names are derived from tenant ids we generate, never from user input."""

import re

_SCHEMA_RE = re.compile(r"^t_[a-z0-9]{1,60}$")


class InvalidSchemaName(ValueError):
    """A schema name that could not have come from `schema_for_tenant`."""


def validate_schema_name(name: str) -> str:
    """Return `name` if it is a tenant schema name, else raise (guards every DDL we format)."""
    if not _SCHEMA_RE.fullmatch(name):
        raise InvalidSchemaName(f"not a tenant schema name: {name!r}")
    return name


def schema_for_tenant(tenant_id: str) -> str:
    """`ten_01jabc…` → `t_01jabc…`: the id's random part, lower-case alphanumerics only."""
    _, _, body = tenant_id.partition("_")
    return validate_schema_name(f"t_{body.lower()}")


def quoted_schema(name: str) -> str:
    """`"t_…"`, ready to prefix table and function names in raw SQL (validated first)."""
    return f'"{validate_schema_name(name)}"'
