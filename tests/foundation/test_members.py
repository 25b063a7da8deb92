"""Members: the first tenant-scoped resource, and tenant isolation through it."""

import asyncio
from dataclasses import replace

import httpx

from pointsmall.settings import Settings
from tests.conftest import TenantClient, serving


async def test_create_get_update_member(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    created = await a.http.post(
        "/v1/members", json={"external_id": "cust-1", "email": "x@example.com"}
    )
    assert created.status_code == 201, created.text
    member = created.json()
    assert member["id"].startswith("mem_")
    assert member["status"] == "active"
    got = await a.http.get(f"/v1/members/{member['id']}")
    assert got.json() == member
    patched = await a.http.patch(
        f"/v1/members/{member['id']}", json={"name": "Ada", "status": "suspended"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Ada"
    assert patched.json()["status"] == "suspended"
    assert patched.json()["email"] == "x@example.com"  # untouched when not sent


async def test_duplicate_external_id_is_member_exists(
    tenants: tuple[TenantClient, TenantClient],
) -> None:
    a, b = tenants
    assert (await a.http.post("/v1/members", json={"external_id": "dup"})).status_code == 201
    again = await a.http.post("/v1/members", json={"external_id": "dup"})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["code"] == "member_exists"
    # Another tenant's namespace is its own.
    assert (await b.http.post("/v1/members", json={"external_id": "dup"})).status_code == 201


async def test_patch_to_taken_external_id_conflicts(
    tenants: tuple[TenantClient, TenantClient],
) -> None:
    a, _ = tenants
    await a.http.post("/v1/members", json={"external_id": "one"})
    two = (await a.http.post("/v1/members", json={"external_id": "two"})).json()
    clash = await a.http.patch(f"/v1/members/{two['id']}", json={"external_id": "one"})
    assert clash.status_code == 409
    assert clash.json()["code"] == "member_exists"
    assert (await a.http.get(f"/v1/members/{two['id']}")).json()["external_id"] == "two"


async def test_find_by_external_id(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, b = tenants
    mine = (await a.http.post("/v1/members", json={"external_id": "shop-42"})).json()
    await a.http.post("/v1/members", json={"external_id": "shop-43"})
    found = (await a.http.get("/v1/members", params={"external_id": "shop-42"})).json()
    assert [m["id"] for m in found["data"]] == [mine["id"]]
    assert (await b.http.get("/v1/members", params={"external_id": "shop-42"})).json()["data"] == []


async def test_cursor_pagination_walks_every_member_once(
    tenants: tuple[TenantClient, TenantClient],
) -> None:
    a, _ = tenants
    ids = []
    for i in range(7):
        ids.append((await a.http.post("/v1/members", json={"external_id": f"p{i}"})).json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"starting_after": cursor} if cursor else {})
        page = (await a.http.get("/v1/members", params=params)).json()
        seen += [m["id"] for m in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == sorted(ids, reverse=True)  # newest first, each once


async def test_list_limit_bounds(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    for bad in (0, 101, "x"):
        response = await a.http.get("/v1/members", params={"limit": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["code"] == "validation_error"


async def test_other_tenant_sees_404_like_missing(
    tenants: tuple[TenantClient, TenantClient],
) -> None:
    a, b = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "private"})).json()
    missing = await b.http.get("/v1/members/mem_01jzzzzzzzzzzzzzzzzzzzzzzz")
    foreign = await b.http.get(f"/v1/members/{member['id']}")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert foreign.json()["code"] == "not_found"
    changed = await b.http.patch(f"/v1/members/{member['id']}", json={"name": "stolen"})
    assert changed.status_code == 404
    assert (await a.http.get(f"/v1/members/{member['id']}")).json()["name"] is None
    assert (await b.http.get("/v1/members")).json()["data"] == []


async def test_interleaved_tenants_on_a_pool_of_one(
    tenants: tuple[TenantClient, TenantClient], settings: Settings
) -> None:
    """Two tenants' requests interleaved over ONE pooled connection each see only their rows.

    A session-level search_path would leak here: the second tenant would see the first's.
    """
    a, b = tenants
    await a.http.post("/v1/members", json={"external_id": "only-a"})
    await b.http.post("/v1/members", json={"external_id": "only-b"})
    async with (
        serving(replace(settings, db_pool_size=1, db_max_overflow=0, db_pool_shards=1)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):

        async def ask(t: TenantClient) -> list[str]:
            auth = {"Authorization": f"Bearer {t.api_key}"}
            page = await http.get("/v1/members", headers=auth)
            return [m["external_id"] for m in page.json()["data"]]

        results = await asyncio.gather(*(ask(a if i % 2 == 0 else b) for i in range(40)))
    for i, seen in enumerate(results):
        assert seen == (["only-a"] if i % 2 == 0 else ["only-b"])
