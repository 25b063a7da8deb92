"""Bad input never gives a 500, is problem+json with field errors, and writes nothing."""

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.members.models import Member
from tests.conftest import TenantClient

BAD_MEMBERS: list[tuple[str, object]] = [
    ("external_id", {}),
    ("external_id", {"external_id": ""}),
    ("external_id", {"external_id": 12}),
    ("external_id", {"external_id": "x" * 256}),
    ("external_id", {"external_id": "tab\there"}),
    ("external_id", {"external_id": "nul\x00"}),
    ("email", {"external_id": "e", "email": "nope"}),
    ("name", {"external_id": "n", "name": "a\x00b"}),
    ("attributes", {"external_id": "a", "attributes": {"k": "\x00"}}),
    ("attributes", {"external_id": "a", "attributes": {"nested": {"deep": 1}}}),
    ("attributes", {"external_id": "a", "attributes": {f"k{i}": i for i in range(51)}}),
    ("attributes", {"external_id": "a", "attributes": {"k": "v" * 501}}),
    ("attributes", {"external_id": "a", "attributes": []}),
    ("surname", {"external_id": "u", "surname": "policy: unknown fields are rejected"}),
    ("body", []),
    ("body", "just a string"),
]


async def _count(tenant: TenantClient, engine: AsyncEngine) -> int:
    async with tenant.db(engine) as session:
        return int(await session.scalar(select(func.count()).select_from(Member)) or 0)


@pytest.mark.parametrize(("field", "body"), BAD_MEMBERS)
async def test_bad_member_body(
    tenants: tuple[TenantClient, TenantClient], engine: AsyncEngine, field: str, body: object
) -> None:
    a, _ = tenants
    response = await a.http.post("/v1/members", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"], problem
    assert any(field in e["field"] or field in e["message"] for e in problem["errors"]), problem
    assert await _count(a, engine) == 0


async def test_bad_patch_changes_nothing(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "keep", "name": "Kept"})).json()
    for body in ({"status": "deleted"}, {"name": 5}, {"external_id": None}, {"id": "mem_x"}):
        response = await a.http.patch(f"/v1/members/{member['id']}", json=body)
        assert response.status_code == 422, (body, response.text)
    assert (await a.http.get(f"/v1/members/{member['id']}")).json() == member


async def test_malformed_ids_are_404(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    for member_id in ("nope", "mem_'; DROP TABLE members; --", "mem_" + "z" * 300):
        response = await a.http.get(f"/v1/members/{member_id}")
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found"


async def test_unknown_route_and_method(
    client: httpx.AsyncClient, tenants: tuple[TenantClient, TenantClient]
) -> None:
    a, _ = tenants
    missing = await a.http.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = await a.http.delete("/v1/members")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
