"""Liveness, readiness, and the background workers' heartbeats."""

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec

from pointsmall.heartbeat import ROLES, read_heartbeats
from pointsmall.settings import Settings

CHECK_TIMEOUT = 2.0


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class WorkerBeat(msgspec.Struct):
    worker: str  # role:host:pid
    role: str
    age_seconds: float
    stale: bool


class WorkersHealth(msgspec.Struct):
    status: str  # ok | stale | unknown
    workers: list[WorkerBeat] = msgspec.field(default_factory=list)
    missing: list[str] = msgspec.field(default_factory=list)  # roles with no fresh heartbeat
    error: str = ""


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


@get("/healthz", tags=["Operations"])
async def healthz() -> Health:
    """The process is up (it checks nothing else)."""
    return Health(status="ok")


@get(
    "/readyz",
    tags=["Operations"],
    responses={503: ResponseSpec(Health, description="The database does not answer")},
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Health]:
    """Ready for traffic when the database answers: 200 `ok`; 503 `unavailable` without it.
    Reads and ledger writes need nothing else, so Redis away is 200 `degraded`: background
    jobs, webhook retries and test events wait meanwhile."""
    state = request.app.state
    checks = {
        "database": await _check(state.hot_pool.fetchval("SELECT 1")),
        "redis": await _check(state.redis.ping()),
    }
    if checks["database"] != "ok":
        return Response(Health("unavailable", checks), status_code=503)
    return Response(Health("ok" if checks["redis"] == "ok" else "degraded", checks))


# Not in the API document: where no worker runs (an API-only deployment, the tests) its
# normal answer is a 503, which schema-driven clients and contract checks take for a fault.
@get("/healthz/workers", tags=["Operations"], include_in_schema=False)
async def workers_health(request: Request[Any, Any, Any]) -> Response[WorkersHealth]:
    """Each worker process's and relay's heartbeat age. 503 when one is stale (older than
    `HEARTBEAT_STALE_SECONDS`), when a role (worker, webhooks-worker, relay) has no fresh
    heartbeat, or when Redis, where heartbeats are kept, does not answer."""
    state = request.app.state
    settings: Settings = state.settings
    stale_after = settings.heartbeat_stale_seconds
    try:
        beats = await asyncio.wait_for(
            read_heartbeats(state.redis, settings.queue_name, stale_after), CHECK_TIMEOUT
        )
    except Exception as exc:
        error = f"redis: {type(exc).__name__}"
        return Response(WorkersHealth("unknown", error=error), status_code=503)
    workers = [WorkerBeat(b.worker, b.role, b.age_seconds, b.stale) for b in beats]
    missing = [r for r in ROLES if not any(b.role == r and not b.stale for b in beats)]
    if missing or any(b.stale for b in beats):
        return Response(WorkersHealth("stale", workers, missing), status_code=503)
    return Response(WorkersHealth("ok", workers))
