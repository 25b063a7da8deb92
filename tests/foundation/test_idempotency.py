"""Idempotency-Key: same key and body replays; other body conflicts; concurrency gives one write."""

import asyncio
import uuid

from sqlalchemy import func, select

from pointsmall.members.models import Member
from tests.conftest import TenantClient


async def _member_count(tenant: TenantClient, engine: object) -> int:
    async with tenant.db(engine) as session:  # type: ignore[arg-type]
        return int(await session.scalar(select(func.count()).select_from(Member)) or 0)


async def test_same_key_same_body_replays(
    tenants: tuple[TenantClient, TenantClient], engine: object
) -> None:
    a, _ = tenants
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await a.http.post("/v1/members", json={"external_id": "idem", "name": "A"}, headers=key)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # Same JSON, other key order and spacing: the same request.
    again = await a.http.post(
        "/v1/members",
        content=b'{ "name":"A",  "external_id":"idem"}',
        headers=key | {"content-type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await _member_count(a, engine) == 1


async def test_same_key_other_body_conflicts(
    tenants: tuple[TenantClient, TenantClient], engine: object
) -> None:
    a, _ = tenants
    key = {"Idempotency-Key": "order-7781"}
    assert (
        await a.http.post("/v1/members", json={"external_id": "k1"}, headers=key)
    ).status_code == 201
    other = await a.http.post("/v1/members", json={"external_id": "k2"}, headers=key)
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_conflict"
    assert await _member_count(a, engine) == 1


async def test_keys_are_per_tenant(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, b = tenants
    key = {"Idempotency-Key": "shared-name"}
    ra = await a.http.post("/v1/members", json={"external_id": "m"}, headers=key)
    rb = await b.http.post("/v1/members", json={"external_id": "m"}, headers=key)
    assert ra.status_code == rb.status_code == 201
    assert "idempotent-replayed" not in rb.headers
    assert ra.json()["id"] != rb.json()["id"]


async def test_failed_request_is_not_stored(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    await a.http.post("/v1/members", json={"external_id": "taken"})
    key = {"Idempotency-Key": "retry-me"}
    failed = await a.http.post("/v1/members", json={"external_id": "taken"}, headers=key)
    assert failed.status_code == 409
    assert failed.json()["code"] == "member_exists"
    # The 4xx was rolled back with its key, so the same key can carry the corrected retry.
    fixed = await a.http.post("/v1/members", json={"external_id": "taken"}, headers=key)
    assert fixed.status_code == 409 and "idempotent-replayed" not in fixed.headers


async def test_bad_key_is_422(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    for bad in ("x" * 256, "spaces are not allowed"):
        response = await a.http.post(
            "/v1/members", json={"external_id": "z"}, headers={"Idempotency-Key": bad}
        )
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"


async def test_concurrent_same_key_writes_once(
    tenants: tuple[TenantClient, TenantClient], engine: object
) -> None:
    a, _ = tenants
    key = {"Idempotency-Key": str(uuid.uuid4())}
    responses = await asyncio.gather(
        *(a.http.post("/v1/members", json={"external_id": "race"}, headers=key) for _ in range(20))
    )
    statuses = [r.status_code for r in responses]
    assert all(s in (201, 409) for s in statuses), statuses
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in created) == 1
    conflicts = [r.json()["code"] for r in responses if r.status_code == 409]
    assert set(conflicts) <= {"idempotency_conflict"}
    assert await _member_count(a, engine) == 1
