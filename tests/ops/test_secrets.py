"""No secret at rest in plain text: answers the idempotency store replays are sealed, and
production will not start without configured keys."""

import asyncio
import dataclasses
import os
import sys

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.app import create_app
from pointsmall.idempotency.models import IdempotencyKey
from pointsmall.keyring import MissingKeys, secret_box
from pointsmall.settings import Settings
from tests.conftest import TenantClient

COLUMN_TYPES = ("text", "character varying", "character", "bytea", "json", "jsonb")


async def _columns_holding(engine: AsyncEngine, schemas: list[str], secret: str) -> list[str]:
    """Every text, bytea and JSON column of `schemas` in which `secret` occurs."""
    found: list[str] = []
    async with engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT table_schema, table_name, column_name, data_type"
                    " FROM information_schema.columns"
                    " WHERE table_schema = ANY(:schemas) AND data_type = ANY(:types)"
                ),
                {"schemas": schemas, "types": list(COLUMN_TYPES)},
            )
        ).all()
        assert {c[0] for c in columns} == set(schemas)  # the scan sees every schema
        for schema, table, column, data_type in columns:
            where = (
                f"position(convert_to(:s, 'UTF8') in \"{column}\") > 0"
                if data_type == "bytea"
                else f'strpos("{column}"::text, :s) > 0'
            )
            hits = await conn.scalar(
                text(f'SELECT count(*) FROM "{schema}"."{table}" WHERE {where}'), {"s": secret}
            )
            if hits:
                found.append(f"{schema}.{table}.{column}")
    return found


async def test_keys_and_webhook_secrets_are_not_kept_in_plain_text(
    tenants: tuple[TenantClient, TenantClient], engine: AsyncEngine
) -> None:
    a, _ = tenants
    key_headers = {"Idempotency-Key": "new-key-1"}
    created = await a.http.post("/v1/api-keys", json={"name": "ci"}, headers=key_headers)
    assert created.status_code == 201, created.text
    api_key = created.json()["secret"]
    replay = await a.http.post("/v1/api-keys", json={"name": "ci"}, headers=key_headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == created.json()  # the replay still gives the client its key

    hook_headers = {"Idempotency-Key": "new-hook-1"}
    body = {"url": "http://127.0.0.1:9/in"}  # the tests allow private targets
    hook = await a.http.post("/v1/webhook-endpoints", json=body, headers=hook_headers)
    assert hook.status_code == 201, hook.text
    rotated = await a.http.post(
        f"/v1/webhook-endpoints/{hook.json()['id']}/rotate-secret",
        headers={"Idempotency-Key": "rotate-1"},
    )
    assert rotated.status_code in (200, 201), rotated.text
    again = await a.http.post("/v1/webhook-endpoints", json=body, headers=hook_headers)
    assert again.json() == hook.json()

    secrets = [api_key, hook.json()["secret"], rotated.json()["secret"]]
    for secret in secrets:
        assert await _columns_holding(engine, [a.schema, "shared"], secret) == []
    # The same scan does find what it looks for: the API key's id is stored as it is.
    assert await _columns_holding(engine, ["shared"], created.json()["id"]) != []


def test_production_refuses_to_start_without_keys(settings: Settings) -> None:
    production = dataclasses.replace(settings, environment="production", webhook_secret_keys=None)
    with pytest.raises(MissingKeys, match="WEBHOOK_SECRET_KEYS"):
        create_app(production)
    with pytest.raises(MissingKeys):
        secret_box(production)  # no key file is made silently either


async def test_serve_refuses_to_start_in_production_without_keys(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WEBHOOK_SECRET_KEYS"}
    env |= {
        "POINTSMALL_ENV": "production",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "PORT": "1",  # never bound: it must stop before serving
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pointsmall", "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert b"WEBHOOK_SECRET_KEYS must be set in production" in stderr


async def test_an_answer_sealed_under_a_retired_key_is_a_409(
    tenants: tuple[TenantClient, TenantClient], engine: AsyncEngine
) -> None:
    a, _ = tenants
    headers = {"Idempotency-Key": "retired-1"}
    first = await a.http.post("/v1/api-keys", json={"name": "r"}, headers=headers)
    assert first.status_code == 201
    async with a.db(engine) as session, session.begin():  # as if sealed by a key now gone
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == "retired-1")
            .values(response_body=b"sealed:gone:AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        )
    again = await a.http.post("/v1/api-keys", json={"name": "r"}, headers=headers)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "idempotency_conflict"
