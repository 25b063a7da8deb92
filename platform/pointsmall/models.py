"""Every table, imported in one place so metadata is complete for migrations."""

from pointsmall.auth.models import ApiKey
from pointsmall.db import SharedBase, TenantBase
from pointsmall.idempotency.models import IdempotencyKey
from pointsmall.members.models import Member
from pointsmall.tenancy.models import StaffUser, TenantSettings

__all__ = [
    "ApiKey",
    "IdempotencyKey",
    "Member",
    "SharedBase",
    "StaffUser",
    "TenantBase",
    "TenantSettings",
]
