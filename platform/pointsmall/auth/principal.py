"""Who is calling: the tenant and scopes a credential carries."""

from dataclasses import dataclass

SCOPES = ("points:read", "points:write", "catalog:read", "catalog:write", "orders:write", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    schema: str
    credential_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes
