"""Every table, imported in one place so metadata is complete for migrations."""

from pointsmall.auth.models import ApiKey
from pointsmall.db import SharedBase, TenantBase
from pointsmall.idempotency.models import IdempotencyKey
from pointsmall.ledger.models import (
    Balance,
    LedgerTransaction,
    Lot,
    LotDraw,
    OutboxEvent,
    PointType,
    Posting,
)
from pointsmall.mall.models import Coupon, Order, OrderLine, Product
from pointsmall.members.models import Member
from pointsmall.rules.models import (
    CheckIn,
    Event,
    MemberTier,
    Rule,
    RuleAward,
    RuleVersion,
    Tier,
    TierChange,
)
from pointsmall.tenancy.models import StaffUser, TenantSettings
from pointsmall.webhooks.models import tables as webhook_tables

__all__ = [
    "ApiKey",
    "Balance",
    "CheckIn",
    "Coupon",
    "Event",
    "IdempotencyKey",
    "LedgerTransaction",
    "Lot",
    "LotDraw",
    "Member",
    "MemberTier",
    "Order",
    "OrderLine",
    "OutboxEvent",
    "PointType",
    "Posting",
    "Product",
    "Rule",
    "RuleAward",
    "RuleVersion",
    "SharedBase",
    "StaffUser",
    "TenantBase",
    "TenantSettings",
    "Tier",
    "TierChange",
    "webhook_tables",
]
