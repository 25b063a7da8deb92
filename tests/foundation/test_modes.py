"""Test and live apart: `pm_test_` keys act on the tenant's sandbox (a schema of its own,
claimed on first use), `pm_live_` keys on live data; webhook events say which (`livemode`)."""

import asyncio
import json
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pointsmall.tenancy.services import all_schemas, migration_schemas, schema_modes
from pointsmall.webhooks.relay import relay_schema
from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]


async def _sandbox(engine: AsyncEngine, tenant_id: str) -> str | None:
    async with engine.connect() as conn:
        schema: str | None = (
            await conn.execute(
                text("SELECT sandbox_schema FROM shared.tenants WHERE id = :id"), {"id": tenant_id}
            )
        ).scalar_one()
    return schema


async def _test_client(t: TenantClient, scopes: list[str] | None = None) -> httpx.AsyncClient:
    """A client holding a new test-mode key of `t` (issued with its live admin key)."""
    body: dict[str, Any] = {"name": "sandbox", "mode": "test"}
    if scopes:
        body["scopes"] = scopes
    created = await t.http.post("/v1/api-keys", json=body)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("pm_test_")
    return httpx.AsyncClient(
        base_url=str(t.http.base_url), headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


async def _member(http: httpx.AsyncClient, external_id: str) -> str:
    created = await http.post("/v1/members", json={"external_id": external_id})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _external_ids(http: httpx.AsyncClient) -> set[str]:
    listed = await http.get("/v1/members", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    return {m["external_id"] for m in listed.json()["data"]}


async def test_members_are_apart_both_ways(tenants: Tenants, engine: AsyncEngine) -> None:
    a, _ = tenants
    live_member = await _member(a.http, "live-only")
    assert await _sandbox(engine, a.id) is None  # live use claims nothing
    async with await _test_client(a) as sandbox:
        test_member = await _member(sandbox, "test-only")
        assert await _external_ids(sandbox) == {"test-only"}
        assert await _external_ids(a.http) == {"live-only"}
        assert (await sandbox.get(f"/v1/members/{live_member}")).status_code == 404
        assert (await a.http.get(f"/v1/members/{test_member}")).status_code == 404
        # The same external id may exist once in each mode.
        await _member(sandbox, "live-only")
    schema = await _sandbox(engine, a.id)
    assert schema is not None and schema != a.schema
    async with engine.connect() as conn:
        live_rows = await conn.execute(text(f'SELECT external_id FROM "{a.schema}".members'))
        test_rows = await conn.execute(text(f'SELECT external_id FROM "{schema}".members'))
        assert sorted(r[0] for r in live_rows) == ["live-only"]
        assert sorted(r[0] for r in test_rows) == ["live-only", "test-only"]


async def test_ledger_writes_are_apart(tenants: Tenants, engine: AsyncEngine) -> None:
    a, _ = tenants
    live_member = await _member(a.http, "m-live")
    async with await _test_client(a) as sandbox:
        test_member = await _member(sandbox, "m-test")
        earned = await sandbox.post(
            "/v1/points/earn", json={"member_id": test_member, "points": 70, "reason": "t"}
        )
        assert earned.status_code == 201, earned.text
        # Neither key reaches the other mode's member.
        cross = await a.http.post(
            "/v1/points/earn", json={"member_id": test_member, "points": 5, "reason": "x"}
        )
        assert cross.status_code == 404, cross.text
        cross = await sandbox.post(
            "/v1/points/earn", json={"member_id": live_member, "points": 5, "reason": "x"}
        )
        assert cross.status_code == 404, cross.text
        live_earned = await a.http.post(
            "/v1/points/earn", json={"member_id": live_member, "points": 30, "reason": "l"}
        )
        assert live_earned.status_code == 201, live_earned.text
        test_balance = (await sandbox.get(f"/v1/members/{test_member}/balance")).json()
        live_balance = (await a.http.get(f"/v1/members/{live_member}/balance")).json()
    assert json.dumps(test_balance).count("70") >= 1 and "30" not in json.dumps(test_balance)
    assert json.dumps(live_balance).count("30") >= 1 and "70" not in json.dumps(live_balance)
    schema = await _sandbox(engine, a.id)
    async with engine.connect() as conn:
        for s, points in ((a.schema, 30), (schema, 70)):
            events = (
                await conn.execute(text(f'SELECT type, payload FROM "{s}".outbox ORDER BY id'))
            ).all()
            earned_events = [p for t, p in events if t == "points.earned"]
            assert [e["points"] for e in earned_events] == [points]


async def test_settings_copied_at_claim(tenants: Tenants) -> None:
    a, _ = tenants
    patched = await a.http.patch("/v1/settings", json={"timezone": "Asia/Tokyo"})
    assert patched.status_code == 200, patched.text
    live = patched.json()
    async with await _test_client(a) as sandbox:
        copied = (await sandbox.get("/v1/settings")).json()
        assert copied["timezone"] == "Asia/Tokyo"
        assert copied["currency"] == live["currency"]
        assert copied["name"] == live["name"]
        # From then on each mode keeps its own.
        changed = await sandbox.patch("/v1/settings", json={"timezone": "Europe/Paris"})
        assert changed.status_code == 200, changed.text
    assert (await a.http.get("/v1/settings")).json()["timezone"] == "Asia/Tokyo"


async def _endpoint(http: httpx.AsyncClient, url: str) -> str:
    created = await http.post("/v1/webhook-endpoints", json={"url": url})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_webhooks_carry_livemode_and_stay_in_their_mode(
    tenants: Tenants, engine: AsyncEngine, hot_pool: asyncpg.Pool
) -> None:
    a, _ = tenants
    live_endpoint = await _endpoint(a.http, "http://127.0.0.1:9/live")
    async with await _test_client(a) as sandbox:
        test_endpoint = await _endpoint(sandbox, "http://127.0.0.1:9/test")
        await _member(sandbox, "hook-test")
    await _member(a.http, "hook-live")
    schema = await _sandbox(engine, a.id)
    assert schema is not None
    # The worker's map (looked up once per pass) knows each schema's mode.
    async with AsyncSession(engine) as session:
        modes = await schema_modes(session)
    assert modes[a.schema] == (a.id, True)
    assert modes[schema] == (a.id, False)
    async with hot_pool.acquire() as conn:
        live_pairs = (await relay_schema(conn, a.schema, a.id, livemode=True)).pairs
        test_pairs = (await relay_schema(conn, schema, a.id)).pairs  # looked up
    assert {e for _, e in live_pairs} == {live_endpoint}
    assert {e for _, e in test_pairs} == {test_endpoint}
    async with engine.connect() as conn:
        for s, livemode, external_id in (
            (a.schema, True, "hook-live"),
            (schema, False, "hook-test"),
        ):
            bodies = [
                json.loads(r[0])
                for r in await conn.execute(text(f'SELECT body FROM "{s}".webhook_messages'))
            ]
            assert bodies, s
            assert {b["livemode"] for b in bodies} == {livemode}
            assert {b["tenant_id"] for b in bodies} == {a.id}
            created = [b for b in bodies if b["type"] == "member.created"]
            assert [b["data"]["external_id"] for b in created] == [external_id]


async def test_webhook_test_message_says_its_mode(tenants: Tenants, engine: AsyncEngine) -> None:
    a, _ = tenants
    async with await _test_client(a) as sandbox:
        endpoint = await _endpoint(sandbox, "http://127.0.0.1:9/test")
        sent = await sandbox.post(f"/v1/webhook-endpoints/{endpoint}/test")
        assert sent.status_code == 202, sent.text
    schema = await _sandbox(engine, a.id)
    async with engine.connect() as conn:
        body = (
            await conn.execute(
                text(f'SELECT body FROM "{schema}".webhook_messages WHERE id = :id'),
                {"id": sent.json()["message_id"]},
            )
        ).scalar_one()
    assert json.loads(body)["livemode"] is False


async def test_concurrent_first_uses_claim_one_sandbox(
    tenants: Tenants, engine: AsyncEngine
) -> None:
    """Several test keys, each used for the first time at once (no principal is cached):
    every request lands in the same sandbox, so every member is found afterwards."""
    a, _ = tenants
    clients = [await _test_client(a) for _ in range(8)]
    try:
        created = await asyncio.gather(
            *(c.post("/v1/members", json={"external_id": f"c{i}"}) for i, c in enumerate(clients))
        )
        assert [r.status_code for r in created] == [201] * 8, [r.text for r in created]
        assert await _external_ids(clients[0]) == {f"c{i}" for i in range(8)}
    finally:
        for c in clients:
            await c.aclose()
    schema = await _sandbox(engine, a.id)
    async with engine.connect() as conn:
        count = (await conn.execute(text(f'SELECT count(*) FROM "{schema}".members'))).scalar_one()
    assert count == 8


async def test_signup_key_is_test_and_claims_on_first_use(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    signed = await client.post(
        "/signup",
        json={
            "merchant_name": "Sandbox Shop",
            "admin_email": "owner@sandbox.example",
            "password": "correct horse battery",
        },
    )
    assert signed.status_code == 201, signed.text
    body = signed.json()
    assert body["api_key"].startswith("pm_test_")
    tenant_id = body["tenant"]["id"]
    assert await _sandbox(engine, tenant_id) is None  # a tenant that never used a test key
    used = await client.get("/v1/members", headers={"Authorization": f"Bearer {body['api_key']}"})
    assert used.status_code == 200, used.text
    schema = await _sandbox(engine, tenant_id)
    assert schema is not None and schema != "t_" + tenant_id.split("_", 1)[1]


async def test_migrate_and_jobs_include_sandboxes(tenants: Tenants, engine: AsyncEngine) -> None:
    a, b = tenants
    async with await _test_client(a) as sandbox:
        assert (await sandbox.get("/v1/members")).status_code == 200
    schema = await _sandbox(engine, a.id)
    assert schema is not None
    assert await _sandbox(engine, b.id) is None
    async with AsyncSession(engine) as session:
        listed = await all_schemas(session)
        migrated = await migration_schemas(session)
        spares = (
            await session.execute(text("SELECT count(*) FROM shared.spare_schemas"))
        ).scalar_one()
    assert {a.schema, schema, b.schema} <= set(listed)
    assert len(listed) == len(set(listed))
    assert set(listed) <= set(migrated)
    assert len(migrated) == len(listed) + spares
