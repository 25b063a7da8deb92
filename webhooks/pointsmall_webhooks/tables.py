"""The webhook tables, declared on the caller's metadata (each tenant schema holds its own)."""

from dataclasses import dataclass

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    text,
)


@dataclass(frozen=True)
class WebhookTables:
    endpoints: Table
    messages: Table
    deliveries: Table
    attempts: Table
    notices: Table


def _created() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False)


def define_tables(metadata: MetaData) -> WebhookTables:
    endpoints = Table(
        "webhook_endpoints",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("url", String(2000), nullable=False),
        Column("description", String(500)),
        Column("event_types", ARRAY(String(100))),  # None: every event
        Column("enabled", Boolean, nullable=False, server_default=text("true")),
        Column("disabled_reason", String(40)),
        # `<key id>:<AES-GCM blob>`; the previous secret signs too until it expires.
        Column("secret", Text, nullable=False),
        Column("previous_secret", Text),
        Column("previous_secret_expires_at", DateTime(timezone=True)),
        Column("failing_since", DateTime(timezone=True)),  # None while deliveries succeed
        _created(),
        Column(
            "updated_at",
            DateTime(timezone=True),
            server_default=func.now(),
            onupdate=func.now(),
            nullable=False,
        ),
    )
    messages = Table(
        "webhook_messages",
        metadata,
        Column("id", String(40), primary_key=True),  # the `webhook-id`, the same on every retry
        Column("event_id", String(40)),
        Column("event_type", String(100), nullable=False),
        Column("body", Text, nullable=False),  # exactly the bytes signed and sent
        _created(),
    )
    deliveries = Table(
        "webhook_deliveries",
        metadata,
        Column("message_id", ForeignKey("webhook_messages.id"), nullable=False),
        Column("endpoint_id", ForeignKey("webhook_endpoints.id"), nullable=False, index=True),
        # pending | succeeded | failed (attempts ran out) | cancelled (endpoint disabled or gone)
        Column("status", String(16), nullable=False, server_default="pending"),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", DateTime(timezone=True)),
        Column("last_status_code", Integer),
        _created(),
        PrimaryKeyConstraint("message_id", "endpoint_id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )
    attempts = Table(
        "webhook_attempts",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("message_id", String(40), nullable=False),
        Column("endpoint_id", String(40), nullable=False),
        Column("attempt", Integer, nullable=False),
        Column("attempted_at", DateTime(timezone=True), nullable=False),
        Column("status_code", Integer),
        Column("latency_ms", Integer, nullable=False),
        Column("response_excerpt", String(1024)),
        Column("error", String(500)),
        Column("outcome", String(16), nullable=False),
        Index("ix_webhook_attempts_message", "message_id", "endpoint_id", "attempt"),
    )
    notices = Table(
        "webhook_notices",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("endpoint_id", String(40), nullable=False),
        Column("kind", String(40), nullable=False),  # endpoint_disabled
        Column("detail", String(500), nullable=False),
        _created(),
    )
    return WebhookTables(endpoints, messages, deliveries, attempts, notices)
