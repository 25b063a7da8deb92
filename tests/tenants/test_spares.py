"""Spare schemas: made ahead, claimed by a signup in its own transaction, migrated with the
tenants, given back when the signup rolls back."""

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pointsmall.migrations import tenant_migrations
from pointsmall.tenancy.models import SpareSchema
from pointsmall.tenancy.services import make_spares, spare_schemas
from pointsmall_tenants import schema_for_tenant


async def _spares(engine: AsyncEngine) -> list[str]:
    async with AsyncSession(engine) as session:
        return list((await session.scalars(select(SpareSchema.tenant_id))).all())


async def test_a_signup_claims_a_spare_schema(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    assert await make_spares(engine, tenant_migrations(), 2) >= 0
    before = await _spares(engine)
    assert len(before) >= 2
    async with AsyncSession(engine) as session:
        assert schema_for_tenant(before[0]) in await spare_schemas(session)
    signup = await client.post(
        "/signup",
        json={"merchant_name": "Spare Co", "admin_email": "a@spare.example", "password": "p" * 12},
    )
    assert signup.status_code == 201, signup.text
    tenant_id = signup.json()["tenant"]["id"]
    assert tenant_id == before[0]  # the oldest spare, now this merchant's
    assert await _spares(engine) == before[1:]
    http = {"Authorization": f"Bearer {signup.json()['api_key']}"}
    member = await client.post("/v1/members", json={"external_id": "m1"}, headers=http)
    assert member.status_code == 201
    # The signup's key is a test key: its first use took the next spare as the sandbox.
    left = await _spares(engine)
    assert left == before[2:]
    async with engine.connect() as conn:
        zone = await conn.scalar(
            text(f'SELECT timezone FROM "{schema_for_tenant(tenant_id)}".settings')
        )
    assert zone == "UTC"
    # A signup that fails (its slug is taken) leaves the spare it claimed in the pool.
    taken = await client.post(
        "/signup",
        json={
            "merchant_name": "Other",
            "admin_email": "b@spare.example",
            "password": "p" * 12,
            "slug": signup.json()["tenant"]["slug"],
        },
    )
    assert taken.status_code == 409
    assert await _spares(engine) == left
    async with AsyncSession(engine) as session:
        assert (
            await session.scalar(select(func.count()).select_from(SpareSchema)) == len(before) - 2
        )
