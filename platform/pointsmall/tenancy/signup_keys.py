"""`Idempotency-Key` on `POST /signup`, which is outside `/v1` and has no tenant yet.

The same rules as the tenants' keys (`pointsmall.idempotency`): the key's row is inserted
in the signup's own transaction before anything else, so a concurrent signup with the same
key waits on it and then replays the stored answer (or runs, if the first rolled back); one
key makes one tenant. Only a signup that succeeded stores its answer.

The answer carries the first API key, so it is sealed like the tenants' stored answers. The
request's fingerprint is the sealed answer's associated data rather than a column: the body
holds the password, and a plain SHA-256 of it kept for a day would let a reader of the
database test guesses far faster than the argon2 hash allows. An answer that does not open
under this request's fingerprint was made by another request: 409 `idempotency_conflict`.
"""

from datetime import timedelta

from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pointsmall.errors import Conflict
from pointsmall.idempotency.middleware import open_answer, seal_answer
from pointsmall.settings import Settings
from pointsmall.tenancy.models import SignupIdempotencyKey as Key


def _binding(key: str, fingerprint: bytes) -> str:
    return f"signup-idempotency:{key}:{fingerprint.hex()}"


def _reused() -> Conflict:
    return Conflict(
        "This Idempotency-Key was used with a different request.",
        code="idempotency_conflict",
        title="Idempotency key reused",
    )


async def claim(
    session: AsyncSession, settings: Settings, key: str, fingerprint: bytes
) -> bytes | None:
    """Take the key in the session's transaction: None when this request now holds it;
    otherwise (once its holder has committed) the stored answer. 409 for another request."""
    claimed = (
        await session.execute(
            pg_insert(Key)
            .values(key=key, response_body=b"")
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(Key.key)
        )
    ).first()
    if claimed is not None:
        return None
    stored = await session.scalar(select(Key.response_body).where(Key.key == key))
    if stored is None:  # purged between the two statements: the retry will claim it
        raise Conflict("Retry the request.", code="idempotency_conflict")
    try:
        return open_answer(settings, _binding(key, fingerprint), stored)
    except InvalidTag:
        raise _reused() from None


async def store(
    session: AsyncSession, settings: Settings, key: str, fingerprint: bytes, answer: bytes
) -> None:
    """Keep the answer (sealed) with the key, in the signup's transaction."""
    await session.execute(
        update(Key)
        .where(Key.key == key)
        .values(response_body=seal_answer(settings, _binding(key, fingerprint), answer))
    )


async def purge(engine: AsyncEngine, ttl_hours: int) -> int:
    """Forget signup keys older than `ttl_hours` (IDEMPOTENCY_TTL_HOURS); how many went."""
    async with AsyncSession(engine) as session, session.begin():
        result = await session.execute(
            delete(Key).where(Key.created_at < func.now() - timedelta(hours=ttl_hours))
        )
    return int(getattr(result, "rowcount", 0) or 0)
