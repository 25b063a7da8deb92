"""The contract at the edge: signup's Idempotency-Key, the settings' name and CORS origins,
CORS per tenant, the docs page served whole by the app, and notices as a list envelope."""

import asyncio
import hashlib
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.static import SWAGGER_UI_DIR
from pointsmall.tenancy import signup_keys
from pointsmall.webhooks.models import tables as webhook_tables
from tests.conftest import TenantClient

Tenants = tuple[TenantClient, TenantClient]


def _signup_body(**extra: str) -> dict[str, str]:
    return {
        "merchant_name": f"Edge {uuid.uuid4().hex[:12]}",
        "admin_email": "owner@edge.example",
        "password": "correct horse battery",
        **extra,
    }


async def _tenants_named(engine: AsyncEngine, name: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM shared.tenants WHERE name = :n"), {"n": name}
        )
    return int(count or 0)


# --- signup and Idempotency-Key -------------------------------------------------------------


async def test_signup_replayed_with_the_same_key_makes_one_tenant(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = _signup_body()
    key = f"signup-{uuid.uuid4()}"
    first = await client.post("/signup", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await client.post("/signup", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()  # the same tenant, admin and API key
    assert await _tenants_named(engine, body["merchant_name"]) == 1
    secret = first.json()["api_key"]
    members = await client.get("/v1/members", headers={"Authorization": f"Bearer {secret}"})
    assert members.status_code == 200
    async with engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT response_body FROM shared.signup_idempotency_keys WHERE key = :k"),
            {"k": key},
        )
    assert stored is not None and bytes(stored).startswith(b"sealed:")
    assert secret.encode() not in bytes(stored)  # the API key is not kept readable
    assert body["password"].encode() not in bytes(stored)


async def test_signup_key_with_another_body_is_409(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = _signup_body()
    key = f"signup-{uuid.uuid4()}"
    first = await client.post("/signup", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    other = body | {"password": "another horse battery"}
    again = await client.post("/signup", json=other, headers={"Idempotency-Key": key})
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["code"] == "idempotency_conflict"
    assert await _tenants_named(engine, body["merchant_name"]) == 1


async def test_without_a_key_signups_are_not_deduplicated(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = _signup_body()
    for _ in range(2):
        assert (await client.post("/signup", json=body)).status_code == 201
    assert await _tenants_named(engine, body["merchant_name"]) == 2


async def test_concurrent_signups_with_one_key_make_one_tenant(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = _signup_body()
    key = f"signup-{uuid.uuid4()}"
    answers = await asyncio.gather(
        *(client.post("/signup", json=body, headers={"Idempotency-Key": key}) for _ in range(6))
    )
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert len({a.json()["tenant"]["id"] for a in answers}) == 1
    assert len({a.json()["api_key"] for a in answers}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert await _tenants_named(engine, body["merchant_name"]) == 1


async def test_a_failed_signup_stores_nothing_under_its_key(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    slug = f"edge-{uuid.uuid4().hex[:10]}"
    assert (await client.post("/signup", json=_signup_body(slug=slug))).status_code == 201
    key = f"signup-{uuid.uuid4()}"
    taken = await client.post(
        "/signup", json=_signup_body(slug=slug), headers={"Idempotency-Key": key}
    )
    assert taken.status_code == 409 and taken.json()["code"] == "slug_taken"
    fixed = await client.post("/signup", json=_signup_body(), headers={"Idempotency-Key": key})
    assert fixed.status_code == 201, fixed.text  # the key was free again
    assert "idempotent-replayed" not in fixed.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\there", "ünïcode"])
async def test_a_malformed_signup_key_is_422(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(
        "/signup",
        json=_signup_body(),
        headers=[(b"Idempotency-Key", key.encode())],
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_old_signup_keys_are_purged(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    old, fresh = f"old-{uuid.uuid4()}", f"fresh-{uuid.uuid4()}"
    for key in (old, fresh):
        response = await client.post(
            "/signup", json=_signup_body(), headers={"Idempotency-Key": key}
        )
        assert response.status_code == 201
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE shared.signup_idempotency_keys"
                " SET created_at = now() - interval '25 hours' WHERE key = :k"
            ),
            {"k": old},
        )
    assert await signup_keys.purge(engine, 24) >= 1
    async with engine.connect() as conn:
        left = set(
            (
                await conn.scalars(
                    text("SELECT key FROM shared.signup_idempotency_keys WHERE key IN (:a, :b)"),
                    {"a": old, "b": fresh},
                )
            ).all()
        )
    assert left == {fresh}


# --- settings: name and cors_origins --------------------------------------------------------


async def test_settings_name_is_the_registry_name(
    tenants: Tenants, engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    a, b = tenants
    assert (await a.http.get("/v1/settings")).json()["name"] == "Tenant A"
    changed = await a.http.patch("/v1/settings", json={"name": "Café Rewards"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Café Rewards"
    assert (await a.http.get("/v1/settings")).json()["name"] == "Café Rewards"
    assert (await b.http.get("/v1/settings")).json()["name"] == "Tenant B"
    async with engine.connect() as conn:
        name = await conn.scalar(
            text("SELECT name FROM shared.tenants WHERE id = :id"), {"id": a.id}
        )
    assert name == "Café Rewards"  # one source of truth


@pytest.mark.parametrize("name", ["", "x" * 201, "nul\x00", 42, None])
async def test_a_bad_name_is_422(tenants: Tenants, name: object) -> None:
    a, _ = tenants
    response = await a.http.patch("/v1/settings", json={"name": name})
    assert response.status_code == 422, response.text
    assert (await a.http.get("/v1/settings")).json()["name"] == "Tenant A"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "XYZ"),
        ("currency", "EUR\n"),
        ("timezone", "Mars/Olympus"),
        ("timezone", "UTC\n"),
        ("point_value", "0"),
        ("point_value", "0.000000"),
        ("point_value", "1\n"),
        ("max_points_share", "0.5\n"),
    ],
)
async def test_settings_refuse_what_the_document_refuses(
    tenants: Tenants, field: str, value: str
) -> None:
    a, _ = tenants
    response = await a.http.patch("/v1/settings", json={field: value})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


async def test_settings_keep_cors_origins_in_canonical_form(tenants: Tenants) -> None:
    a, _ = tenants
    assert (await a.http.get("/v1/settings")).json()["cors_origins"] == []
    response = await a.http.patch(
        "/v1/settings",
        json={
            "cors_origins": [
                "https://shop.example",
                "https://shop.example:443",  # the default port: the same origin
                "http://localhost:5173",
                "https://127.0.0.1:8443",
                "https://shop.example",
            ]
        },
    )
    assert response.status_code == 200, response.text
    expected = ["http://localhost:5173", "https://127.0.0.1:8443", "https://shop.example"]
    assert response.json()["cors_origins"] == expected
    assert (await a.http.get("/v1/settings")).json()["cors_origins"] == expected
    cleared = await a.http.patch("/v1/settings", json={"cors_origins": []})
    assert cleared.json()["cors_origins"] == []


@pytest.mark.parametrize(
    "origins",
    [
        ["https://shop.example/"],
        ["https://shop.example/path"],
        ["*"],
        ["null"],
        ["https://*.shop.example"],
        ["HTTPS://SHOP.EXAMPLE"],
        ["ftp://shop.example"],
        ["https://shop.example:99999"],
        ["https://user@shop.example"],
        ["https://[::1]:8443"],
        ["https://shop.example\n"],
        [f"https://s{i}.example" for i in range(21)],
        "https://shop.example",
    ],
)
async def test_bad_cors_origins_are_422(tenants: Tenants, origins: object) -> None:
    a, _ = tenants
    response = await a.http.patch("/v1/settings", json={"cors_origins": origins})
    assert response.status_code == 422, response.text
    assert any("cors_origins" in e["field"] for e in response.json()["errors"])
    assert (await a.http.get("/v1/settings")).json()["cors_origins"] == []


# --- CORS ------------------------------------------------------------------------------------


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


async def test_cors_per_tenant(tenants: Tenants, client: httpx.AsyncClient) -> None:
    a, b = tenants
    shop = f"https://shop-{uuid.uuid4().hex[:8]}.example"
    other = f"https://other-{uuid.uuid4().hex[:8]}.example"
    # Nobody lists the origin yet: the preflight gets no CORS headers (the browser refuses).
    refused = await client.options("/v1/members", headers=_preflight(shop))
    assert "access-control-allow-origin" not in refused.headers
    assert (await a.http.patch("/v1/settings", json={"cors_origins": [shop]})).status_code == 200
    assert (await b.http.patch("/v1/settings", json={"cors_origins": [other]})).status_code == 200

    allowed = await client.options("/v1/members", headers=_preflight(shop))
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == shop
    assert "POST" in allowed.headers["access-control-allow-methods"]
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {
        h.strip() for h in allowed_headers.split(",")
    }
    assert int(allowed.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in allowed.headers
    assert "origin" in allowed.headers["vary"].lower()
    stranger = await client.options("/v1/members", headers=_preflight("https://evil.example"))
    assert "access-control-allow-origin" not in stranger.headers

    # Actual requests: the header only for the tenant whose credential it carries.
    mine = await a.http.get("/v1/members", headers={"Origin": shop})
    assert mine.status_code == 200
    assert mine.headers["access-control-allow-origin"] == shop
    assert "x-request-id" in mine.headers["access-control-expose-headers"].lower()
    assert "origin" in mine.headers["vary"].lower()
    theirs = await b.http.get("/v1/members", headers={"Origin": shop})
    assert theirs.status_code == 200
    assert "access-control-allow-origin" not in theirs.headers
    assert "origin" in theirs.headers["vary"].lower()
    assert (await b.http.get("/v1/members", headers={"Origin": other})).headers[
        "access-control-allow-origin"
    ] == other
    unlisted = await a.http.get("/v1/members", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in unlisted.headers

    # Without a credential (401) a listed origin may read the refusal.
    anonymous = await client.get("/v1/members", headers={"Origin": shop})
    assert anonymous.status_code == 401
    assert anonymous.headers["access-control-allow-origin"] == shop

    # A change is seen at once: the origin dropped, its preflight and requests are refused.
    assert (await a.http.patch("/v1/settings", json={"cors_origins": []})).status_code == 200
    gone = await client.options("/v1/members", headers=_preflight(shop))
    assert "access-control-allow-origin" not in gone.headers
    after = await a.http.get("/v1/members", headers={"Origin": shop})
    assert "access-control-allow-origin" not in after.headers


async def test_cors_is_for_the_api_only(tenants: Tenants, client: httpx.AsyncClient) -> None:
    a, _ = tenants
    shop = f"https://shop-{uuid.uuid4().hex[:8]}.example"
    assert (await a.http.patch("/v1/settings", json={"cors_origins": [shop]})).status_code == 200
    health = await client.get("/healthz", headers={"Origin": shop})
    assert "access-control-allow-origin" not in health.headers
    preflight = await client.options("/signup", headers=_preflight(shop))
    assert "access-control-allow-origin" not in preflight.headers


# --- the docs page ---------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append((tag, value))


_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_docs_page_is_served_whole_by_the_app(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in response.text
    links = _Links()
    links.feed(response.text)
    urls = [url for _, url in links.urls]
    assert {tag for tag, _ in links.urls} >= {"script", "link"}
    assert len(urls) >= 4, urls  # script, preset, stylesheet, icon
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url  # same origin
        asset = await client.get(url)
        assert asset.status_code == 200, url
        suffix = Path(url).suffix
        assert asset.headers["content-type"].split(";")[0] in _TYPES[suffix], url
        assert asset.content == (SWAGGER_UI_DIR / Path(url).name).read_bytes()
    # Nothing on the page loads from elsewhere (the spec's own text may name URLs).
    markup = re.sub(r"<script>.*?</script>", "", response.text, flags=re.S)
    assert "http://" not in markup and "https://" not in markup


async def test_vendored_files_match_their_record() -> None:
    record = (SWAGGER_UI_DIR.parent / "VENDORED.md").read_text()
    rows = dict(re.findall(r"\| `([^`]+)` \| `([0-9a-f]{64})` \|", record))
    assert set(rows) == {p.name for p in SWAGGER_UI_DIR.iterdir()}
    for name, digest in rows.items():
        assert hashlib.sha256((SWAGGER_UI_DIR / name).read_bytes()).hexdigest() == digest, name


# --- webhook notices: the list envelope ------------------------------------------------------


async def test_notices_are_a_list_envelope(tenants: Tenants, engine: AsyncEngine) -> None:
    a, b = tenants
    created = await a.http.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"})
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]
    empty = (await a.http.get(f"/v1/webhook-endpoints/{endpoint}/notices")).json()
    assert empty == {"data": [], "has_more": False, "next_cursor": None}
    async with a.db(engine) as session, session.begin():
        for n in range(3):
            await session.execute(
                insert(webhook_tables.notices).values(
                    endpoint_id=endpoint, kind="endpoint_disabled", detail=f"notice {n}"
                )
            )
    first = await a.http.get(f"/v1/webhook-endpoints/{endpoint}/notices", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [n["detail"] for n in page["data"]] == ["notice 2", "notice 1"]  # newest first
    assert page["has_more"] is True and page["next_cursor"] == page["data"][-1]["id"]
    assert all(n["id"].startswith("ntc_") and n["endpoint_id"] == endpoint for n in page["data"])
    second = await a.http.get(
        f"/v1/webhook-endpoints/{endpoint}/notices",
        params={"limit": 2, "starting_after": page["next_cursor"]},
    )
    rest = second.json()
    assert [n["detail"] for n in rest["data"]] == ["notice 0"]
    assert rest["has_more"] is False and rest["next_cursor"] is None
    for params in ({"limit": 0}, {"limit": 101}, {"starting_after": "mem_01"}):
        bad = await a.http.get(f"/v1/webhook-endpoints/{endpoint}/notices", params=params)
        assert bad.status_code == 422, (params, bad.text)
    other = await b.http.get(f"/v1/webhook-endpoints/{endpoint}/notices")
    assert other.status_code == 404


# --- the document ----------------------------------------------------------------------------


async def test_the_document_describes_these_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    signup = spec["paths"]["/signup"]["post"]
    assert {"201", "409", "422", "503"} <= set(signup["responses"])
    assert "400" not in signup["responses"]
    assert any(p["name"] == "Idempotency-Key" for p in signup.get("parameters", []))
    assert "Idempotent-Replayed" in signup["responses"]["201"].get("headers", {})
    schemas = spec["components"]["schemas"]
    settings_out = schemas["ProgramSettings"]
    assert {"name", "cors_origins"} <= set(settings_out["required"])
    update = schemas["ProgramSettingsUpdate"]["properties"]
    zones = re.compile(update["timezone"]["pattern"])  # exactly the names the server takes
    assert zones.match("Asia/Shanghai") and zones.match("UTC") and zones.match("Etc/GMT+8")
    assert not zones.match("Mars/Olympus") and not zones.match("Asia")
    assert schemas["SignupCreate"]["properties"]["timezone"]["pattern"] == zones.pattern
    currencies = re.compile(schemas["SignupCreate"]["properties"]["currency"]["pattern"])
    assert currencies.match("USD") and currencies.match("KWD") and not currencies.match("XYZ")
    assert update["currency"]["pattern"] == currencies.pattern
    assert "\\Z" not in update["point_value"]["pattern"]  # the document's form, not Python's
    assert update["cors_origins"]["maxItems"] == 20
    assert update["cors_origins"]["items"]["pattern"].startswith("^https?://")
    assert update["name"]["maxLength"] == 200
    settings_patch = spec["paths"]["/v1/settings"]["patch"]["responses"]
    assert {"200", "401", "403", "409", "422"} <= set(settings_patch)
    notices = spec["paths"]["/v1/webhook-endpoints/{endpoint_id}/notices"]["get"]
    ok = notices["responses"]["200"]["content"]["application/json"]["schema"]
    page = schemas[ok["$ref"].rsplit("/", 1)[1]] if "$ref" in ok else ok
    assert {"data", "has_more", "next_cursor"} <= set(page["properties"])
    assert {p["name"] for p in notices["parameters"]} >= {"limit", "starting_after"}
