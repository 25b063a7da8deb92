"""API keys: the credential alone names the tenant; bad credentials get 401 problem+json."""

import httpx
import pytest

from tests.conftest import TenantClient


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith(code)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer pm_test_notakey",
        "Bearer pm_test_01jzzzzzzzzzzzzzzzzzzzzzzzAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
async def test_missing_or_malformed_key_is_401(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get("/v1/members", headers=headers)
    _problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_tampered_key_is_401(
    tenants: tuple[TenantClient, TenantClient], client: httpx.AsyncClient
) -> None:
    a, _ = tenants
    last = a.api_key[-1]
    tampered = a.api_key[:-1] + ("A" if last != "A" else "B")
    response = await client.get("/v1/members", headers={"Authorization": f"Bearer {tampered}"})
    _problem(response, 401, "unauthorized")


async def test_issue_list_revoke(
    tenants: tuple[TenantClient, TenantClient], client: httpx.AsyncClient
) -> None:
    a, b = tenants
    created = await a.http.post("/v1/api-keys", json={"name": "reader", "scopes": ["points:read"]})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["secret"].startswith("pm_test_")
    assert key["secret"].startswith(key["prefix"])
    listed = (await a.http.get("/v1/api-keys")).json()["data"]
    assert key["id"] in [k["id"] for k in listed]
    assert all("secret" not in k for k in listed)
    assert key["id"] not in [k["id"] for k in (await b.http.get("/v1/api-keys")).json()["data"]]

    reader = {"Authorization": f"Bearer {key['secret']}"}
    assert (await client.get("/v1/members", headers=reader)).status_code == 200
    _problem(
        await client.post("/v1/members", headers=reader, json={"external_id": "x"}),
        403,
        "forbidden",
    )
    _problem(await client.get("/v1/api-keys", headers=reader), 403, "forbidden")

    # Another tenant cannot revoke it: same answer as a missing key.
    _problem(await b.http.delete(f"/v1/api-keys/{key['id']}"), 404, "not_found")
    assert (await client.get("/v1/members", headers=reader)).status_code == 200

    revoked = await a.http.delete(f"/v1/api-keys/{key['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    _problem(await client.get("/v1/members", headers=reader), 401, "unauthorized")


async def test_key_body_validation(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    bodies: tuple[dict[str, object], ...] = (
        {"scopes": []},
        {"scopes": ["root"]},
        {"mode": "prod"},
        {"name": ""},
        {"extra": 1},
    )
    for body in bodies:
        response = await a.http.post("/v1/api-keys", json=body)
        _problem(response, 422, "validation_error")
        assert response.json()["errors"], body
