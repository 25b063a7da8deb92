"""From each tenant's outbox to webhook deliveries: events are read `FOR UPDATE SKIP LOCKED`
(several relays never take the same row), matched to endpoints by type, stored as messages
with one delivery per endpoint, and marked published in one transaction. After the commit
each delivery's first attempt is handed to the relaying worker (or, when it is busy, to one
arq job per delivery). At least once: a delivery whose attempt was lost (a killed worker) is
found again by `rescue` and enqueued."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

import asyncpg
import msgspec
from arq.connections import ArqRedis
from arq.utils import timestamp_ms

from pointsmall.bulk_enqueue import enqueue_many
from pointsmall.ids import new_id
from pointsmall_tenants import quoted_schema

BATCH = 500
CHANNEL = "pointsmall_outbox"


def matches(patterns: list[str] | None, event_type: str) -> bool:
    """No patterns: every event; `points.*` matches `points.earned`; `*` matches all."""
    return patterns is None or any(fnmatchcase(event_type, p) for p in patterns)


def job_id(schema: str, message_id: str, endpoint_id: str, attempt: int) -> str:
    """One job per attempt: a duplicate enqueue of the same attempt is refused by arq."""
    return f"wh:{schema}:{message_id}:{endpoint_id}:{attempt}"


def message_body(
    event_id: str,
    event_type: str,
    created_at: datetime,
    tenant_id: str,
    data: bytes,
    *,
    livemode: bool,
) -> str:
    """`livemode`: the event happened in the tenant's live schema (false: its sandbox)."""
    return msgspec.json.encode(
        {
            "id": event_id,
            "type": event_type,
            "created_at": created_at.astimezone(UTC),
            "tenant_id": tenant_id,
            "livemode": livemode,
            "data": msgspec.Raw(data),
        }
    ).decode()


async def is_live(conn: Any, schema: str) -> bool:
    """True if `schema` is a tenant's live schema, False if it is a sandbox (a round trip:
    the worker looks it up once per pass, with the tenant ids, and passes it)."""
    live: bool | None = await conn.fetchval(
        "SELECT schema_name = $1 FROM shared.tenants WHERE $1 IN (schema_name, sandbox_schema)",
        schema,
    )
    if live is None:
        raise LookupError(f"no tenant has schema {schema}")
    return live


class Relayed(NamedTuple):
    events: int  # taken from the outbox (BATCH: there may be more)
    pairs: list[tuple[str, str]]  # the deliveries made: (message, endpoint)


async def relay_schema(
    conn: Any,
    schema: str,
    tenant_id: str,
    lease: timedelta = timedelta(minutes=2),
    *,
    livemode: bool | None = None,
) -> Relayed:
    """Turn up to BATCH unpublished events into deliveries. A delivery is first due after
    `lease`: the relaying worker attempts it meanwhile. `livemode` (the schema is live, not
    a sandbox) is looked up when not given."""
    s = quoted_schema(schema)
    if livemode is None:
        livemode = await is_live(conn, schema)
    async with conn.transaction():
        # Durable whatever the pool's default: a lost relay commit would send its events
        # again under new message ids.
        await conn.execute("SET LOCAL synchronous_commit = on")
        events = await conn.fetch(
            f"SELECT id, event_id, type, payload::text AS payload, created_at FROM {s}.outbox"
            " WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            BATCH,
        )
        if not events:
            return Relayed(0, [])
        endpoints = await conn.fetch(
            f"SELECT id, event_types FROM {s}.webhook_endpoints WHERE enabled"
        )
        messages: list[tuple[str, str, str, str]] = []
        pairs: list[tuple[str, str]] = []
        for event in events:
            targets = [e["id"] for e in endpoints if matches(e["event_types"], event["type"])]
            if not targets:
                continue
            message_id = new_id("msg")
            body = message_body(
                event["event_id"],
                event["type"],
                event["created_at"],
                tenant_id,
                event["payload"].encode(),
                livemode=livemode,
            )
            messages.append((message_id, event["event_id"], event["type"], body))
            pairs += [(message_id, endpoint) for endpoint in targets]
        if messages:
            await store_messages(conn, s, messages, pairs, lease)
        await conn.execute(
            f"UPDATE {s}.outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
            [e["id"] for e in events],
        )
    return Relayed(len(events), pairs)


async def store_messages(
    conn: Any,
    s: str,
    messages: list[tuple[str, str, str, str]],
    pairs: list[tuple[str, str]],
    lease: timedelta,
) -> None:
    columns = list(zip(*messages, strict=True))
    await conn.execute(
        f"INSERT INTO {s}.webhook_messages (id, event_id, event_type, body)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])",
        *columns,
    )
    await conn.execute(
        f"INSERT INTO {s}.webhook_deliveries (message_id, endpoint_id, next_attempt_at)"
        " SELECT m, e, now() + $3::interval FROM unnest($1::text[], $2::text[]) AS t(m, e)",
        [m for m, _ in pairs],
        [e for _, e in pairs],
        lease,
    )


async def enqueue(
    redis: ArqRedis,
    queue: str,
    schema: str,
    jobs: Sequence[tuple[str, str, int]],
    *,
    bring_forward: bool = False,
) -> None:
    """One `deliver_webhook` job per (message, endpoint, attempt), to run now. A job for the
    same attempt that exists already is kept, and left where it is in the queue unless
    `bring_forward`: then a job waiting for its time (the scheduled retry a manual retry
    means to hurry) is moved to now, so the attempt is made at once and still only once."""
    for start in range(0, len(jobs), 500):
        chunk = [
            (job_id(schema, m, e, n), (schema, m, e, n)) for m, e, n in jobs[start : start + 500]
        ]
        await enqueue_many(redis, queue, "deliver_webhook", chunk)
        if bring_forward:
            # XX: only ids still queued (a job that has just finished is not revived).
            await redis.zadd(queue, {job: timestamp_ms() for job, _ in chunk}, xx=True)


async def rescue(
    pool: asyncpg.Pool,
    redis: ArqRedis,
    queue: str,
    schema: str,
    after: timedelta = timedelta(seconds=30),
) -> int:
    """Deliveries due for a while with no job (a worker died between its commit and its
    enqueue): enqueue them again. A job that still exists makes this a no-op."""
    s = quoted_schema(schema)
    rows = await pool.fetch(
        f"SELECT message_id, endpoint_id, attempts FROM {s}.webhook_deliveries"
        " WHERE status = 'pending' AND next_attempt_at <= now() - $1::interval"
        " ORDER BY next_attempt_at LIMIT 1000",
        after,
    )
    await enqueue(
        redis,
        queue,
        schema,
        [(r["message_id"], r["endpoint_id"], r["attempts"] + 1) for r in rows],
    )
    return len(rows)


async def prune(
    pool: asyncpg.Pool, schema: str, *, outbox_days: int, log_days: int
) -> dict[str, int]:
    """Forget what is done and old: published outbox rows, finished deliveries with their
    attempts, and messages no delivery still needs. Pending deliveries are never touched."""
    s = quoted_schema(schema)
    async with pool.acquire() as conn, conn.transaction():
        outbox = await conn.execute(
            f"DELETE FROM {s}.outbox WHERE published_at < now() - make_interval(days => $1)",
            outbox_days,
        )
        attempts = await conn.execute(
            f"DELETE FROM {s}.webhook_attempts"
            " WHERE attempted_at < now() - make_interval(days => $1)",
            log_days,
        )
        deliveries = await conn.execute(
            f"DELETE FROM {s}.webhook_deliveries WHERE status <> 'pending'"
            " AND created_at < now() - make_interval(days => $1)",
            log_days,
        )
        messages = await conn.execute(
            f"DELETE FROM {s}.webhook_messages m WHERE m.created_at < now() - make_interval(days => $1)"
            f" AND NOT EXISTS (SELECT 1 FROM {s}.webhook_deliveries d WHERE d.message_id = m.id)",
            log_days,
        )
    return {
        name: int(status.rsplit(" ", 1)[-1])
        for name, status in (
            ("outbox", outbox),
            ("attempts", attempts),
            ("deliveries", deliveries),
            ("messages", messages),
        )
    }
