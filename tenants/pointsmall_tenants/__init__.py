"""Schema-per-tenant PostgreSQL on SQLAlchemy: naming, registry, engines, migrations.

A general library: nothing here knows what the tenants do with their schemas.
"""

from pointsmall_tenants.engine import TenantAffineEngines, create_pooled_engine, tenant_bind
from pointsmall_tenants.migrations import FanOutFailed, FanOutReport, SchemaMigrations
from pointsmall_tenants.naming import (
    InvalidSchemaName,
    quoted_schema,
    schema_for_tenant,
    validate_schema_name,
)
from pointsmall_tenants.registry import TENANTS_SCHEMA, tenants_table

__all__ = [
    "TENANTS_SCHEMA",
    "FanOutFailed",
    "FanOutReport",
    "InvalidSchemaName",
    "SchemaMigrations",
    "TenantAffineEngines",
    "create_pooled_engine",
    "quoted_schema",
    "schema_for_tenant",
    "tenant_bind",
    "tenants_table",
    "validate_schema_name",
]
