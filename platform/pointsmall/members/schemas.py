from datetime import datetime
from typing import Any, Literal

import msgspec

from pointsmall.schemas import Attributes, Email, ExternalId, Name

MemberStatus = Literal["active", "suspended"]


class MemberCreate(msgspec.Struct, forbid_unknown_fields=True):
    external_id: ExternalId
    email: Email | None = None
    name: Name | None = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class MemberUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Only the fields sent change; send null to clear email or name."""

    external_id: ExternalId | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType | None = msgspec.UNSET
    name: Name | msgspec.UnsetType | None = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType = msgspec.UNSET
    status: MemberStatus | msgspec.UnsetType = msgspec.UNSET


class Member(msgspec.Struct):
    id: str
    external_id: str
    email: str | None
    name: str | None
    attributes: dict[str, Any]
    status: MemberStatus
    referral_code: str | None
    created_at: datetime
    updated_at: datetime
    object: str = "member"
