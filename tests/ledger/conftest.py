from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import TenantClient
from tests.ledger.invariants import assert_ledger_invariants


@pytest.fixture
async def ledger(
    tenants: tuple[TenantClient, TenantClient], engine: AsyncEngine
) -> AsyncIterator[tuple[TenantClient, TenantClient]]:
    """Two tenants whose ledger invariants are checked after the test."""
    yield tenants
    for tenant in tenants:
        await assert_ledger_invariants(engine, tenant.schema)


async def new_member(tenant: TenantClient, external_id: str = "m") -> str:
    response = await tenant.http.post("/v1/members", json={"external_id": external_id})
    assert response.status_code == 201, response.text
    member_id: str = response.json()["id"]
    return member_id
