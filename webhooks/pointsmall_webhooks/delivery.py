"""Deliver one message to one endpoint, once, and record what happened: the attempt in the
log, the delivery's next step, the endpoint's health. Scheduling the next attempt is the
caller's (the verdict says when)."""

import re
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from pointsmall_webhooks.policy import DISABLE_AFTER, Verdict, judge
from pointsmall_webhooks.secretbox import SecretBox
from pointsmall_webhooks.sender import Sender
from pointsmall_webhooks.signing import sign_headers


def quoted(schema: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ValueError(f"not a schema name: {schema!r}")
    return f'"{schema}"'


@dataclass(frozen=True)
class Attempted:
    attempt: int
    verdict: Verdict
    status: int | None


def signing_secrets(box: SecretBox, row: asyncpg.Record, now: datetime) -> list[str]:
    """The current secret, and the previous one while its grace period lasts."""
    found = [box.decrypt(row["secret"], row["endpoint_id"])]
    if row["previous_secret"] and row["previous_secret_expires_at"] > now:
        found.append(box.decrypt(row["previous_secret"], row["endpoint_id"]))
    return found


async def deliver(
    db: asyncpg.Pool,
    http: Sender,
    box: SecretBox,
    schema: str,
    message_id: str,
    endpoint_id: str,
    *,
    now: datetime,
    attempt: int | None = None,
) -> Attempted | None:
    """None when there is nothing to do (delivered already, the endpoint is disabled, or
    `attempt`, the attempt the caller was scheduled to make, was made already)."""
    s = quoted(schema)
    row = await db.fetchrow(
        f"SELECT m.body, d.status, d.attempts, e.id AS endpoint_id, e.url, e.enabled, e.secret,"
        f" e.previous_secret, e.previous_secret_expires_at, e.failing_since"
        f" FROM {s}.webhook_deliveries d JOIN {s}.webhook_messages m ON m.id = d.message_id"
        f" JOIN {s}.webhook_endpoints e ON e.id = d.endpoint_id"
        " WHERE d.message_id = $1 AND d.endpoint_id = $2",
        message_id,
        endpoint_id,
    )
    if row is None or row["status"] != "pending":
        return None
    if attempt is not None and row["attempts"] + 1 != attempt:
        return None  # a stale job: a manual retry made this attempt ahead of the schedule
    if not row["enabled"]:
        await db.execute(
            f"UPDATE {s}.webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL"
            " WHERE message_id = $1 AND endpoint_id = $2 AND status = 'pending'",
            message_id,
            endpoint_id,
        )
        return None
    body = row["body"].encode()
    headers = sign_headers(signing_secrets(box, row, now), message_id, int(now.timestamp()), body)
    response = await http.post(row["url"], headers, body)
    attempt = row["attempts"] + 1
    verdict = judge(response.status, response.retry_after, attempt, now)
    status = {"succeeded": "succeeded", "retry": "pending"}.get(verdict.outcome, "failed")
    # One statement: the attempt in the log, the delivery's state, the endpoint's health.
    await db.execute(
        f"WITH logged AS (INSERT INTO {s}.webhook_attempts (message_id, endpoint_id, attempt,"
        " attempted_at, status_code, latency_ms, response_excerpt, error, outcome)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)),"
        # A delivery cancelled (its endpoint disabled) while this attempt was in flight
        # stays cancelled: a failure does not bring it back to pending.
        f" delivery AS (UPDATE {s}.webhook_deliveries SET attempts = $3, last_status_code = $5,"
        " status = CASE WHEN status = 'cancelled' AND $10 = 'pending' THEN status ELSE $10 END,"
        " next_attempt_at = CASE WHEN status = 'cancelled' AND $10 = 'pending' THEN NULL"
        " ELSE $11::timestamptz END WHERE message_id = $1 AND endpoint_id = $2)"
        # The endpoint row is written only when its health changes: deliveries to one
        # endpoint must not queue on its row lock.
        f" UPDATE {s}.webhook_endpoints SET failing_since = CASE WHEN $9 = 'succeeded'"
        " THEN NULL ELSE $4 END WHERE id = $2"
        " AND (failing_since IS NULL) = ($9 <> 'succeeded')",
        message_id,
        endpoint_id,
        attempt,
        now,
        response.status,
        response.latency_ms,
        response.excerpt,
        response.error,
        verdict.outcome,
        status,
        verdict.retry_at,
    )
    failing_since = row["failing_since"]
    if verdict.outcome == "endpoint_gone":
        await disable(db, schema, endpoint_id, "gone", "The endpoint answered 410 Gone.")
    elif (
        verdict.outcome != "succeeded"
        and failing_since is not None
        and now - failing_since >= DISABLE_AFTER
    ):
        await disable(
            db,
            schema,
            endpoint_id,
            "failing",
            f"Every delivery failed since {failing_since.isoformat()}.",
        )
    return Attempted(attempt, verdict, response.status)


async def disable(
    db: asyncpg.Pool, schema: str, endpoint_id: str, reason: str, detail: str
) -> None:
    """Stop delivering to an endpoint, cancel what waits for it, and record a notice."""
    s = quoted(schema)
    async with db.acquire() as conn, conn.transaction():
        changed = await conn.fetchval(
            f"UPDATE {s}.webhook_endpoints SET enabled = false, disabled_reason = $2,"
            " updated_at = now() WHERE id = $1 AND enabled RETURNING id",
            endpoint_id,
            reason,
        )
        if changed is None:
            return
        await conn.execute(
            f"UPDATE {s}.webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL"
            " WHERE endpoint_id = $1 AND status = 'pending'",
            endpoint_id,
        )
        await conn.execute(
            f"INSERT INTO {s}.webhook_notices (endpoint_id, kind, detail)"
            " VALUES ($1, 'endpoint_disabled', $2)",
            endpoint_id,
            detail,
        )
