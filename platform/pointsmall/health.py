"""Liveness and readiness."""

from typing import Any

import msgspec
from litestar import Request, Response, get
from sqlalchemy import text

from pointsmall.errors import make_problem, problem_response


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


@get("/healthz", tags=["Operations"])
async def healthz() -> Health:
    """The process is up (it checks nothing else)."""
    return Health(status="ok")


@get("/readyz", tags=["Operations"])
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """Ready for traffic: the database and Redis both answer."""
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return Response(Health(status="ok", checks=checks))
    problem = make_problem(
        503, "not_ready", "Not ready", ", ".join(f"{k}: {v}" for k, v in checks.items())
    )
    return problem_response(problem)
