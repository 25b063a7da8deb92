"""Defects a new user met at the edge: OPTIONS, bytes that are not UTF-8, NUL anywhere,
and an access log that tells the truth. Each answer is a 4xx problem, never a 500, and
writes nothing."""

import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.members.models import Member
from tests.conftest import TenantClient


async def _members(tenant: TenantClient, engine: AsyncEngine) -> int:
    async with tenant.db(engine) as session:
        return int(await session.scalar(select(func.count()).select_from(Member)) or 0)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/members",
        "/v1/members/mem_x",
        "/v1/points/earn",
        "/v1/orders/ord_x",
        "/v1/api-keys/key_x",  # controllers with guards of their own
        "/v1/webhook-endpoints",
        "/v1/webhook-messages/msg_x/retry",
    ],
)
async def test_options_is_answered_without_a_credential(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.options(path)
    assert response.status_code == 204, response.text
    assert "OPTIONS" in response.headers["allow"]
    assert response.headers["x-request-id"].startswith("req_")
    preflight = await client.options(
        path,
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204, preflight.text


async def test_body_that_is_not_utf8_is_422(
    tenants: tuple[TenantClient, TenantClient], engine: AsyncEngine
) -> None:
    a, _ = tenants
    response = await a.http.post(
        "/v1/members",
        content=b'{"external_id":"\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error" and problem["detail"]
    assert problem["errors"] == [{"field": "body", "message": "the body is not valid UTF-8"}]
    assert await _members(a, engine) == 0


NUL_BODIES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "/v1/events",
        "data.note",
        {
            "type": "custom.visit",
            "member_id": "{member}",
            "occurred_at": "{now}",
            "data": {"note": "a\x00b"},
        },
    ),
    (
        "/v1/events",
        "data.tags[1]",
        {
            "type": "custom.visit",
            "member_id": "{member}",
            "occurred_at": "{now}",
            "data": {"tags": ["ok", "\x00"]},
        },
    ),
    (
        "/v1/events",
        "data.a\x00",
        {
            "type": "custom.visit",
            "member_id": "{member}",
            "occurred_at": "{now}",
            "data": {"a\x00": 1},
        },
    ),
    (
        "/v1/orders",
        "shipping_address.line1",
        {
            "member_id": "{member}",
            "lines": [{"product_id": "prod_x", "quantity": 1}],
            "shipping_address": {"line1": "\x00"},
        },
    ),
]


@pytest.mark.parametrize(("path", "field", "body"), NUL_BODIES)
async def test_nul_inside_free_form_json_is_422(
    tenants: tuple[TenantClient, TenantClient], path: str, field: str, body: dict[str, Any]
) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "nul"})).json()["id"]
    now = datetime.now(UTC).isoformat()
    fill = {"{member}": member, "{now}": now}
    body = {k: fill.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    response = await a.http.post(path, json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"]
    [error] = problem["errors"]
    # Free-form data is checked at the edge; a typed field may refuse it by its own pattern.
    assert error["field"] == field or error["field"].startswith(field.split(".")[0]), error
    assert "NUL" in error["message"] or "x00" in error["message"], error
    history = await a.http.get(f"/v1/members/{member}/transactions")
    assert history.json()["data"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/orders/a%00b"),
        ("GET", "/v1/members/mem_a%00b"),
        ("POST", "/v1/transactions/txn_a%00b/reverse"),
        ("POST", "/v1/transactions/txn_a%00b/release"),
        ("GET", "/v1/coupons/a%00b"),
        ("POST", "/v1/coupons/a%00b/redeem"),
        ("DELETE", "/v1/api-keys/a%00b"),
        ("GET", "/v1/webhook-messages/msg_a%00b"),
    ],
)
async def test_nul_in_a_path_id_is_404(
    tenants: tuple[TenantClient, TenantClient], method: str, path: str
) -> None:
    a, _ = tenants
    response = await a.http.request(method, path)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"


async def test_nul_in_a_query_value_is_422(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    response = await a.http.get("/v1/members", params={"external_id": "a\x00"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "external_id"


async def test_access_log_tells_the_truth(
    client: httpx.AsyncClient,
    tenants: tuple[TenantClient, TenantClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = tenants
    caplog.set_level(logging.INFO, logger="pointsmall.access")
    # (who, method, path, status, tenant the log names: known only once authenticated)
    calls = [
        (client, "GET", "/v1/members", 401, None),
        (a.http, "GET", "/v1/members", 200, a.id),
        (a.http, "GET", "/v1/members/mem_nope", 404, a.id),
        (a.http, "HEAD", "/v1/points/earn", 405, None),
        (a.http, "DELETE", "/v1/members", 405, None),
        (a.http, "GET", "/v1/no-such-route", 404, None),
        (client, "OPTIONS", "/v1/members", 204, None),
    ]
    ids = []
    for http, method, path, status, _ in calls:
        response = await http.request(method, path)
        assert response.status_code == status, (method, path, response.text)
        ids.append(response.headers["x-request-id"])
    records: dict[str, Any] = {
        getattr(r, "request_id", ""): r for r in caplog.records if r.name == "pointsmall.access"
    }
    for (_, method, path, status, tenant), request_id in zip(calls, ids, strict=True):
        record = records[request_id]
        assert (record.method, record.path, record.status) == (method, path, status)
        assert record.tenant_id == tenant, (method, path)
    assert records[ids[1]].route == "/v1/members"
    assert records[ids[2]].route == "/v1/members/{member_id}"


@pytest.mark.parametrize(
    "body", [{"timezone": "Mars/Olympus_Mons"}, {"point_value": "0"}, {"nope": 1}]
)
async def test_every_422_has_a_detail(
    tenants: tuple[TenantClient, TenantClient], body: dict[str, Any]
) -> None:
    a, _ = tenants
    response = await a.http.patch("/v1/settings", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"], response.json()


async def test_options_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    members = await client.options("/v1/members")
    assert members.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    one = await client.options("/v1/members/mem_x")
    assert one.headers["allow"] == "GET, HEAD, OPTIONS, PATCH"


async def test_head_works_wherever_get_does(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "h"})).json()["id"]
    for path in ("/v1/members", f"/v1/members/{member}", f"/v1/members/{member}/balance"):
        get = await a.http.get(path)
        head = await a.http.head(path)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["content-length"] == get.headers["content-length"]
        assert head.headers["x-request-id"]
    missing = await a.http.head("/v1/members/mem_nope")
    assert missing.status_code == 404 and missing.content == b""
    post_only = await a.http.head("/v1/points/earn")
    assert post_only.status_code == 405
    assert set(post_only.headers["allow"].split(", ")) == {"OPTIONS", "POST"}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_json_is_415(
    tenants: tuple[TenantClient, TenantClient], engine: AsyncEngine, content_type: str | None
) -> None:
    a, _ = tenants
    headers = {"content-type": content_type} if content_type else {}
    response = await a.http.post("/v1/members", content=b'{"external_id": "x"}', headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_media_type"
    assert await _members(a, engine) == 0
    ok = await a.http.post(
        "/v1/members",
        content=b'{"external_id": "y"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201, ok.text


async def test_an_integral_float_is_an_integer_but_a_string_is_not(
    tenants: tuple[TenantClient, TenantClient],
) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "f"})).json()["id"]
    body = {"member_id": member, "reason": "x"}
    earned = await a.http.post("/v1/points/earn", json=body | {"points": 5.0})
    assert earned.status_code == 201, earned.text
    assert earned.json()["points"] == 5
    for points in (5.5, "5", True):
        refused = await a.http.post("/v1/points/earn", json=body | {"points": points})
        assert refused.status_code == 422, (points, refused.text)


async def test_a_name_holding_nul_is_named_escaped(
    tenants: tuple[TenantClient, TenantClient],
) -> None:
    a, _ = tenants
    response = await a.http.get("/v1/members", params={"a\x00b": "1"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "a\\u0000b"
    assert "\x00" not in response.text
