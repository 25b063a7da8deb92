from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from pointsmall.schemas import FLAT_OBJECT_SCHEMA, Attributes, Email, ExternalId, Name

MemberStatus = Literal["active", "suspended"]

_ATTRIBUTES_SCHEMA = FLAT_OBJECT_SCHEMA
_ATTRIBUTES = (
    "The merchant's own data, flat like Stripe metadata: at most 50 keys of 1 to 40 "
    "characters (letters, digits, `_ . : -`), values strings of at most 500 characters, "
    "numbers, booleans or null."
)
_EXTERNAL_ID = "The merchant's own customer id: unique in the program."
_EMAIL = "The member's email; null for none."
_NAME = "The member's name; null for none."
_STATUS = "`suspended` members can neither earn nor spend (409 `member_suspended`)."


class MemberCreate(msgspec.Struct, forbid_unknown_fields=True):
    external_id: Annotated[ExternalId, msgspec.Meta(description=_EXTERNAL_ID)]
    email: Annotated[Email, msgspec.Meta(description=_EMAIL)] | None = None
    name: Annotated[Name, msgspec.Meta(description=_NAME)] | None = None
    attributes: Annotated[
        Attributes,
        msgspec.Meta(description=_ATTRIBUTES, extra_json_schema={"extra": _ATTRIBUTES_SCHEMA}),
    ] = msgspec.field(default_factory=dict)


class MemberUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Only the fields sent change; send null to clear email or name."""

    external_id: (
        Annotated[ExternalId, msgspec.Meta(description=_EXTERNAL_ID)] | msgspec.UnsetType
    ) = msgspec.UNSET
    email: Annotated[Email, msgspec.Meta(description=_EMAIL)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    name: Annotated[Name, msgspec.Meta(description=_NAME)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    attributes: (
        Annotated[
            Attributes,
            msgspec.Meta(
                description=_ATTRIBUTES + " Replaces them all.",
                extra_json_schema={"extra": {"oneOf": [_ATTRIBUTES_SCHEMA]}},
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    status: Annotated[MemberStatus, msgspec.Meta(description=_STATUS)] | msgspec.UnsetType = (
        msgspec.UNSET
    )


class Member(msgspec.Struct):
    id: Annotated[str, msgspec.Meta(description="The member's id (`mem_…`).")]
    external_id: Annotated[str, msgspec.Meta(description=_EXTERNAL_ID)]
    email: Annotated[str | None, msgspec.Meta(description=_EMAIL)]
    name: Annotated[str | None, msgspec.Meta(description=_NAME)]
    attributes: Annotated[dict[str, Any], msgspec.Meta(description=_ATTRIBUTES)]
    status: Annotated[MemberStatus, msgspec.Meta(description=_STATUS)]
    referral_code: Annotated[
        str | None, msgspec.Meta(description="The member's code for referring others.")
    ]
    created_at: Annotated[datetime, msgspec.Meta(description="When the member was enrolled (UTC).")]
    updated_at: Annotated[datetime, msgspec.Meta(description="When the member last changed (UTC).")]
    object: Annotated[Literal["member"], msgspec.Meta(description="Always `member`.")]
