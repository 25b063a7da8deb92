"""Issuing, checking and revoking API keys.

A key is `pm_<mode>_<key id><secret>`: the key id (a ULID) finds the row by primary key,
and the SHA-256 digest of the whole token is compared in constant time. The secret has
190 bits of entropy, so a fast digest is safe where a password would need a slow hash.

A live key acts on the tenant's schema, a test key on its sandbox: another schema, claimed
from the spare pool the first time any of the tenant's test keys is used.
"""

import hashlib
import hmac
import re
import secrets
import string
import time

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pointsmall.auth.models import ApiKey
from pointsmall.auth.principal import Principal
from pointsmall.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from pointsmall.db import TENANTS
from pointsmall.errors import NotFound
from pointsmall.ids import new_ulid
from pointsmall.pagination import newest_first, to_page
from pointsmall.schemas import Page

_ALPHABET = string.ascii_letters + string.digits
_SECRET_LEN = 32
_TOKEN_RE = re.compile(r"^pm_(test|live)_([0-9a-hjkmnp-tv-z]{26})([A-Za-z0-9]{32})$")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        mode=key.mode,
        prefix=key.prefix,
        scopes=list(key.scopes),
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


async def issue(session: AsyncSession, tenant_id: str, data: ApiKeyCreate) -> ApiKeyCreated:
    ulid = new_ulid()
    token = f"pm_{data.mode}_{ulid}" + "".join(
        secrets.choice(_ALPHABET) for _ in range(_SECRET_LEN)
    )
    key = ApiKey(
        id=f"key_{ulid}",
        tenant_id=tenant_id,
        name=data.name,
        mode=data.mode,
        prefix=f"pm_{data.mode}_{ulid}",
        digest=_digest(token),
        scopes=sorted(set(data.scopes)),
    )
    session.add(key)
    await session.flush()
    await session.refresh(key)
    out = _out(key)
    return ApiKeyCreated(**{f: getattr(out, f) for f in out.__struct_fields__}, secret=token)


async def authenticate(conn: AsyncConnection, token: str) -> Principal | None:
    """The principal of a working key, or None (unknown, tampered, revoked or malformed).

    A test key's first use by its tenant claims the sandbox (a transaction of its own on
    `conn`); every later use finds it in the registry row read here.
    """
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        return None
    row = (
        await conn.execute(
            select(
                ApiKey.digest,
                ApiKey.scopes,
                ApiKey.mode,
                ApiKey.revoked_at,
                TENANTS.c.id,
                TENANTS.c.schema_name,
                TENANTS.c.sandbox_schema,
            )
            .join(TENANTS, TENANTS.c.id == ApiKey.tenant_id)
            .where(ApiKey.id == f"key_{match.group(2)}")
        )
    ).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.digest, _digest(token)):
        return None
    if match.group(1) != row.mode:  # the digest covers the prefix: cannot happen
        return None
    livemode = row.mode == "live"
    schema = row.schema_name if livemode else row.sandbox_schema
    if schema is None:
        schema = await _claim_sandbox(conn, row.id)
    return Principal(
        tenant_id=row.id,
        schema=schema,
        credential_id=f"key_{match.group(2)}",
        scopes=frozenset(row.scopes),
        livemode=livemode,
    )


async def _claim_sandbox(conn: AsyncConnection, tenant_id: str) -> str:
    # Imported here: signup (tenancy) issues keys, so tenancy imports this module.
    from pointsmall.migrations import tenant_migrations
    from pointsmall.tenancy.services import claim_sandbox

    await conn.rollback()  # end the read; the claim is a transaction of its own
    async with conn.begin():
        return await claim_sandbox(conn, tenant_migrations(), tenant_id)


class PrincipalCache:
    """Verified keys, by token digest, for a few seconds: the edge then costs no round trip.

    Only successes are cached. `forget` drops a key at once (on revocation, in this process).
    """

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    def get(self, token: str) -> Principal | None:
        if self.seconds <= 0:
            return None
        hit = self._entries.get(_digest(token))
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, token: str, principal: Principal) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # crude but bounded; a full cache is rare and refills fast
        self._entries[_digest(token)] = (principal, time.monotonic() + self.seconds)

    def forget(self, credential_id: str) -> None:
        for digest, (principal, _) in list(self._entries.items()):
            if principal.credential_id == credential_id:
                del self._entries[digest]


async def list_keys(
    session: AsyncSession, tenant_id: str, limit: int, starting_after: str | None
) -> Page[ApiKeyOut]:
    query = newest_first(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id), ApiKey.id, limit, starting_after
    )
    rows = (await session.scalars(query)).all()
    return to_page(rows, limit, _out, lambda k: k.id)


async def revoke(session: AsyncSession, tenant_id: str, key_id: str) -> ApiKeyOut:
    key = (
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
            .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))  # keep the first time
            .returning(ApiKey)
        )
    ).scalar_one_or_none()
    if key is None:
        raise NotFound("No such API key.")
    return _out(key)
