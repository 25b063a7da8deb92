"""Signing a merchant up: registry row, schema, settings, first admin and key, one transaction."""

import asyncio
import re
import secrets
import unicodedata

from argon2 import PasswordHasher
from sqlalchemy import CompoundSelect, delete, false, func, insert, select, true, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from pointsmall.auth import services as api_keys
from pointsmall.auth.schemas import ApiKeyCreate
from pointsmall.db import TENANTS
from pointsmall.errors import Conflict, FieldError, InvalidInput
from pointsmall.ids import new_id
from pointsmall.mall.money import CURRENCIES
from pointsmall.tenancy.models import SpareSchema, StaffUser, TenantSettings
from pointsmall.tenancy.schemas import AdminOut, SignupCreate, SignupResult, TenantOut
from pointsmall.tenancy.zone import known_time_zone
from pointsmall_tenants import SchemaMigrations, schema_for_tenant

RESERVED_SLUGS = frozenset(
    {"admin", "api", "app", "docs", "login", "oauth", "portal", "signup", "static", "status", "www"}
)
_hasher = PasswordHasher()


def slug_from_name(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-")
    return slug if len(slug) >= 3 and slug not in RESERVED_SLUGS else f"merchant-{slug}".strip("-")


def _check(slug: str | None, time_zone: str, currency: str = "USD") -> None:
    errors = []
    if slug in RESERVED_SLUGS:
        errors.append(FieldError(field="slug", message="this slug is reserved"))
    if not known_time_zone(time_zone):
        errors.append(FieldError(field="timezone", message="not an IANA time zone"))
    if currency not in CURRENCIES:
        errors.append(FieldError(field="currency", message="not an ISO 4217 currency code"))
    if errors:
        raise InvalidInput("The request is invalid.", errors=errors)


async def provision(
    session: AsyncSession,
    migrations: SchemaMigrations,
    *,
    name: str,
    slug: str | None,
    time_zone: str = "UTC",
    currency: str = "USD",
) -> TenantOut:
    """Register a tenant and create its schema at head, in the session's transaction."""
    _check(slug, time_zone)
    spare = await _claim_spare(session)
    tenant_id = spare or new_id("ten")
    schema = schema_for_tenant(tenant_id)
    wanted = slug or slug_from_name(name)
    for attempt in range(3):
        candidate = wanted if attempt == 0 else f"{wanted[:43]}-{secrets.token_hex(2)}"
        inserted = (
            await session.execute(
                pg_insert(TENANTS)
                .values(id=tenant_id, slug=candidate, name=name, schema_name=schema)
                .on_conflict_do_nothing(index_elements=["slug"])
                .returning(TENANTS.c.slug)
            )
        ).scalar_one_or_none()
        if inserted is not None:
            break
        if slug is not None:  # a slug the merchant chose is never changed behind its back
            raise Conflict(f"The slug {slug!r} is taken.", code="slug_taken")
    else:
        raise Conflict("Could not find a free slug; choose one.", code="slug_taken")
    conn = await session.connection()
    if spare:
        await migrations.upgrade(conn, schema)  # a no-op unless a migration came since
    else:
        await migrations.provision(conn, schema)
    tenant_conn = await conn.execution_options(schema_translate_map={None: schema})
    await tenant_conn.execute(
        insert(TenantSettings).values(id=1, timezone=time_zone, currency=currency)
    )
    return TenantOut(id=tenant_id, slug=inserted, name=name)


async def _claim_spare(session: AsyncSession | AsyncConnection) -> str | None:
    """Take one spare schema in this transaction (a rollback gives it back)."""
    oldest = (
        select(SpareSchema.tenant_id)
        .order_by(SpareSchema.tenant_id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed: str | None = await session.scalar(
        delete(SpareSchema).where(SpareSchema.tenant_id == oldest).returning(SpareSchema.tenant_id)
    )
    return claimed


async def make_spares(engine: AsyncEngine, migrations: SchemaMigrations, target: int) -> int:
    """Top the pool of spare schemas up to `target`, one transaction per schema (so a
    signup never waits on this). Returns how many were made."""
    async with AsyncSession(engine) as session:
        have = await session.scalar(select(func.count()).select_from(SpareSchema)) or 0
    made = 0
    for _ in range(target - have):
        tenant_id = new_id("ten")
        async with AsyncSession(engine) as session, session.begin():
            session.add(SpareSchema(tenant_id=tenant_id))
            await session.flush()
            await migrations.provision(await session.connection(), schema_for_tenant(tenant_id))
        made += 1
    return made


async def spare_schemas(session: AsyncSession) -> list[str]:
    ids = (await session.scalars(select(SpareSchema.tenant_id))).all()
    return [schema_for_tenant(tenant_id) for tenant_id in ids]


def check_signup(data: SignupCreate) -> None:
    """What the body's types cannot say: a reserved slug, a time zone IANA does not know, a
    currency ISO 4217 does not list."""
    _check(data.slug, data.timezone, data.currency)


async def hash_password(password: str) -> str:
    """argon2id, off the event loop (it is deliberately slow). Done before the signup's
    transaction opens: it needs no lock."""
    return await asyncio.to_thread(_hasher.hash, password)


async def signup(
    session: AsyncSession, migrations: SchemaMigrations, data: SignupCreate, password_hash: str
) -> SignupResult:
    """The tenant (`provision`), its first admin and first API key, in the session's
    transaction. `password_hash` from `hash_password`, made before the transaction."""
    tenant = await provision(
        session,
        migrations,
        name=data.merchant_name,
        slug=data.slug,
        time_zone=data.timezone,
        currency=data.currency,
    )
    admin = StaffUser(
        id=new_id("usr"),
        tenant_id=tenant.id,
        email=data.admin_email.lower(),
        password_hash=password_hash,
        role="admin",
    )
    session.add(admin)
    key = await api_keys.issue(session, tenant.id, ApiKeyCreate(name="Default key"))
    return SignupResult(
        tenant=tenant, admin=AdminOut(id=admin.id, email=admin.email), api_key=key.secret
    )


async def list_tenants(session: AsyncSession) -> list[TenantOut]:
    rows = await session.execute(
        select(TENANTS.c.id, TENANTS.c.slug, TENANTS.c.name).order_by(TENANTS.c.id)
    )
    return [TenantOut(id=r.id, slug=r.slug, name=r.name) for r in rows]


async def claim_sandbox(conn: AsyncConnection, migrations: SchemaMigrations, tenant_id: str) -> str:
    """The tenant's sandbox schema (where its test keys act), claimed in the caller's
    transaction if it has none yet: a spare schema (upgraded if a migration came since), or,
    with none left, one provisioned here. Its settings start as a copy of the live ones.

    The tenant's registry row is locked first, so concurrent first uses make one sandbox:
    the others wait, then find it. (`NO KEY UPDATE`: issuing a key, whose foreign key takes
    a key-share lock on the row, does not wait for a claim.)
    """
    row = (
        await conn.execute(
            select(TENANTS.c.schema_name, TENANTS.c.sandbox_schema)
            .where(TENANTS.c.id == tenant_id)
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE
        )
    ).one()
    if row.sandbox_schema is not None:
        return str(row.sandbox_schema)
    spare = await _claim_spare(conn)
    schema = schema_for_tenant(spare or new_id("ten"))
    if spare:
        await migrations.upgrade(conn, schema)  # a no-op unless a migration came since
    else:
        await migrations.provision(conn, schema)
    live = await conn.execution_options(schema_translate_map={None: row.schema_name})
    columns = [c for c in TenantSettings.__table__.columns if c.name != "updated_at"]
    settings = (await live.execute(select(*columns))).mappings().one()
    sandbox = await conn.execution_options(schema_translate_map={None: schema})
    await sandbox.execute(insert(TenantSettings).values(**settings))
    await conn.execute(
        update(TENANTS).where(TENANTS.c.id == tenant_id).values(sandbox_schema=schema)
    )
    return schema


def _tenant_schemas() -> CompoundSelect[str, str, bool]:
    """(schema, tenant id, livemode) for every tenant schema: live ones and sandboxes."""
    live = select(TENANTS.c.schema_name, TENANTS.c.id, true())
    test = select(TENANTS.c.sandbox_schema, TENANTS.c.id, false()).where(
        TENANTS.c.sandbox_schema.is_not(None)
    )
    return union_all(live, test)


async def all_schemas(session: AsyncSession) -> list[str]:
    """Every tenant's schemas: its live schema and, once it has one, its sandbox (what
    migrations, sweeps and crons iterate). Spare schemas are not included."""
    rows = await session.execute(_tenant_schemas())
    return sorted(schema for schema, _, _ in rows.all())


async def migration_schemas(session: AsyncSession) -> list[str]:
    """What `pointsmall migrate` fans out over: every tenant's live schema and sandbox, and
    the spare schemas."""
    return await all_schemas(session) + await spare_schemas(session)


async def schema_modes(session: AsyncSession) -> dict[str, tuple[str, bool]]:
    """schema → (tenant id, livemode), for every tenant schema (live and sandbox)."""
    rows = await session.execute(_tenant_schemas())
    return {schema: (tenant, bool(live)) for schema, tenant, live in rows.all()}
