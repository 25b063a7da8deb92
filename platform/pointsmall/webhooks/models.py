"""The webhook tables in every tenant schema (declared by `pointsmall_webhooks`)."""

from pointsmall.db import TenantBase
from pointsmall_webhooks.tables import define_tables

tables = define_tables(TenantBase.metadata)
