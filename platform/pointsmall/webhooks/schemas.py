from datetime import datetime
from typing import Annotated, Any

import msgspec

# Every event type the platform writes to its outbox: what an endpoint may subscribe to.
# A new event type must be added here, or endpoints cannot name it (`*` still matches it).
EVENT_TYPES = [
    "member.created",
    "member.tier_changed",
    "order.cancelled",
    "order.confirmed",
    "order.created",
    "order.fulfilled",
    "order.refunded",
    "points.earned",
    "points.expired",
    "points.pending_released",
    "points.reversed",
    "points.spent",
]

EventPattern = Annotated[str, msgspec.Meta(pattern=r"^[a-z*][a-z0-9_.*]{0,99}$")]
# No whitespace or control characters (a NUL reached the database as a 500).
TargetUrl = Annotated[
    str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$")
]
Description = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\x00]*$")]


class EndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    """`event_types`: patterns such as `points.*` or `order.created`; none means every event."""

    url: TargetUrl
    event_types: Annotated[list[EventPattern], msgspec.Meta(min_length=1, max_length=50)] | None = (
        None
    )
    description: Description | None = None
    enabled: bool = True


class EndpointUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    url: TargetUrl | msgspec.UnsetType = msgspec.UNSET
    event_types: (
        Annotated[list[EventPattern], msgspec.Meta(min_length=1, max_length=50)]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class Endpoint(msgspec.Struct):
    id: str
    url: str
    event_types: list[str] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    # Only in the creation and rotation answers and from GET …/secret.
    secret: str | msgspec.UnsetType = msgspec.UNSET
    object: str = "webhook_endpoint"


class Secret(msgspec.Struct):
    """`previous_secret_expires_at`: until then the old secret signs beside this one."""

    secret: str
    previous_secret_expires_at: datetime | None
    object: str = "webhook_secret"


class Delivery(msgspec.Struct):
    id: str  # the message id (`webhook-id`)
    endpoint_id: str
    event_type: str
    status: str  # pending | succeeded | failed | cancelled
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    object: str = "webhook_delivery"


class Attempt(msgspec.Struct):
    attempt: int
    endpoint_id: str
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None
    outcome: str  # succeeded | retry | failed | endpoint_gone


class Message(msgspec.Struct):
    id: str
    event_id: str | None
    event_type: str
    payload: Any
    created_at: datetime
    deliveries: list[Delivery]
    attempts: list[Attempt]
    object: str = "webhook_message"


class RetryIn(msgspec.Struct, forbid_unknown_fields=True):
    """Send again to one endpoint, or (none given) to every endpoint the message went to."""

    endpoint_id: Annotated[str, msgspec.Meta(max_length=40)] | None = None


class Notice(msgspec.Struct):
    """Why an endpoint was disabled: `kind` is `endpoint_disabled`, `detail` says why (410
    Gone, or five days of failures)."""

    id: Annotated[str, msgspec.Meta(description="The notice's id (`ntc_…`).")]
    endpoint_id: Annotated[str, msgspec.Meta(description="The endpoint (`wh_…`).")]
    kind: Annotated[str, msgspec.Meta(description="What happened: `endpoint_disabled`.")]
    detail: Annotated[str, msgspec.Meta(description="Why, in a sentence.")]
    created_at: Annotated[datetime, msgspec.Meta(description="When it happened.")]
    object: Annotated[str, msgspec.Meta(description="Always `webhook_notice`.")] = "webhook_notice"
