"""The tenant registry: one row per tenant in the shared schema, naming its schema (and,
once one is needed, a second schema of its own: its sandbox)."""

from sqlalchemy import Column, DateTime, MetaData, String, Table, func

TENANTS_SCHEMA = "shared"


def tenants_table(metadata: MetaData, schema: str = TENANTS_SCHEMA) -> Table:
    """Define the registry table on the caller's metadata (so its migrations own it)."""
    return Table(
        "tenants",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("slug", String(48), nullable=False, unique=True),
        Column("name", String(200), nullable=False),
        Column("schema_name", String(63), nullable=False, unique=True),
        # A second schema the tenant owns (test mode), made only when first needed.
        Column("sandbox_schema", String(63), nullable=True, unique=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        schema=schema,
    )
