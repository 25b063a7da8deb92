"""Signup: one transaction makes the tenant, its schema, the first admin and the first key."""

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

GOOD = {
    "merchant_name": "Acme Coffee",
    "admin_email": "Owner@Acme.example",
    "password": "correct horse battery",
}


async def _counts(engine: AsyncEngine) -> tuple[int, int, int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM shared.tenants),"
                    " (SELECT count(*) FROM shared.staff_users),"
                    " (SELECT count(*) FROM shared.api_keys),"
                    " (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\\_%')"
                )
            )
        ).one()
    return row[0], row[1], row[2], row[3]


async def test_signup_gives_a_working_key(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post(
        "/signup", json=GOOD | {"slug": "acme-coffee", "timezone": "Asia/Shanghai"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["tenant"]["slug"] == "acme-coffee"
    assert body["tenant"]["name"] == "Acme Coffee"
    assert body["admin"]["email"] == "owner@acme.example"
    key = body["api_key"]
    assert key.startswith("pm_test_")
    members = await client.get("/v1/members", headers={"Authorization": f"Bearer {key}"})
    assert members.status_code == 200
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT digest, prefix FROM shared.api_keys"))).all()
        schema = (
            await conn.execute(
                text("SELECT schema_name FROM shared.tenants WHERE id = :id"),
                {"id": body["tenant"]["id"]},
            )
        ).scalar_one()
        tz = (await conn.execute(text(f'SELECT timezone FROM "{schema}".settings'))).scalar_one()
        password_hash = (
            await conn.execute(
                text("SELECT password_hash FROM shared.staff_users WHERE tenant_id = :id"),
                {"id": body["tenant"]["id"]},
            )
        ).scalar_one()
    assert all(
        key.encode() not in bytes(d) and p != key for d, p in stored
    )  # only a digest is kept
    assert tz == "Asia/Shanghai"
    assert password_hash.startswith("$argon2") and GOOD["password"] not in password_hash


async def test_slug_derived_and_unique(client: httpx.AsyncClient) -> None:
    first = (await client.post("/signup", json=GOOD | {"merchant_name": "Zoë's Café"})).json()
    assert first["tenant"]["slug"].startswith("zoe-s-cafe")
    second = (await client.post("/signup", json=GOOD | {"merchant_name": "Zoë's Café"})).json()
    assert second["tenant"]["slug"] != first["tenant"]["slug"]
    taken = await client.post("/signup", json=GOOD | {"slug": first["tenant"]["slug"]})
    assert taken.status_code == 409
    assert taken.json()["code"] == "slug_taken"


BAD_BODIES = [
    ("slug", GOOD | {"slug": "a'b"}),
    ("slug", GOOD | {"slug": "x; DROP SCHEMA shared CASCADE"}),
    ("slug", GOOD | {"slug": "pg_catalog"}),
    ("slug", GOOD | {"slug": "a" * 200}),
    ("slug", GOOD | {"slug": "café"}),
    ("slug", GOOD | {"slug": "admin"}),
    ("slug", GOOD | {"slug": 42}),
    ("merchant_name", GOOD | {"merchant_name": ""}),
    ("merchant_name", GOOD | {"merchant_name": "x" * 201}),
    ("merchant_name", GOOD | {"merchant_name": "nul\x00byte"}),
    ("admin_email", GOOD | {"admin_email": "not-an-email"}),
    ("password", GOOD | {"password": "short"}),
    ("timezone", GOOD | {"timezone": "Mars/Olympus"}),
    ("currency", GOOD | {"currency": "usd"}),
    ("currency", GOOD | {"currency": "XYZ"}),  # not an ISO 4217 code
    ("currency", GOOD | {"currency": "USD\n"}),
    ("slug", GOOD | {"slug": "acme-coffee\n"}),
    ("timezone", GOOD | {"timezone": "UTC\n"}),
    ("unknown", GOOD | {"unknown": True}),
    ("merchant_name", {k: v for k, v in GOOD.items() if k != "merchant_name"}),
]


@pytest.mark.parametrize(("field", "body"), BAD_BODIES)
async def test_bad_signup_is_422_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, field: str, body: dict[str, object]
) -> None:
    before = await _counts(engine)
    response = await client.post("/signup", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert any(field in e["field"] or field in e["message"] for e in problem["errors"]), problem
    assert await _counts(engine) == before


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[]", b"null", b'"x"', b"\xff\xfe", b'{"merchant_name": }']
)
async def test_unparseable_signup_is_422(
    client: httpx.AsyncClient, engine: AsyncEngine, content: bytes
) -> None:
    before = await _counts(engine)
    response = await client.post(
        "/signup", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"]
    assert await _counts(engine) == before


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = b'{"merchant_name": "' + b"x" * 2_000_000 + b'"}'
    response = await client.post(
        "/signup", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
