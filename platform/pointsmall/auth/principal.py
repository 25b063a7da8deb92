"""Who is calling: the tenant, mode and scopes a credential carries."""

from dataclasses import dataclass

SCOPES = ("points:read", "points:write", "catalog:read", "catalog:write", "orders:write", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    schema: str  # the live schema for a live key, the tenant's sandbox for a test key
    credential_id: str
    scopes: frozenset[str]
    livemode: bool

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes
