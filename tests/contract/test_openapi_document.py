"""The served OpenAPI document says what the server does around every handler."""

from typing import Any

import httpx
import pytest

from tests.conftest import TenantClient


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "responses" in operation
    ]


async def test_every_post_takes_an_idempotency_key(document: dict[str, Any]) -> None:
    posts = [(p, o) for p, m, o in _operations(document) if m == "post"]
    assert len(posts) > 20
    for path, operation in posts:
        names = [p["name"] for p in operation.get("parameters", [])]
        assert "Idempotency-Key" in names, path
        assert "409" in operation["responses"], path
        created = next(r for s, r in operation["responses"].items() if s.startswith("2"))
        assert "Idempotent-Replayed" in created["headers"], path


async def test_edge_answers_are_documented_as_problems(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        assert "400" not in responses, (method, path)  # bad input is a 422 problem here
        if "requestBody" in operation:
            for status in ("413", "415", "422"):
                content = responses[status]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
        if path.startswith("/v1"):
            assert "Retry-After" in responses["503"]["headers"], (method, path)
        for response in responses.values():
            assert "X-Request-Id" in response["headers"], (method, path)


async def test_strict_bodies_say_they_refuse_unknown_fields(
    document: dict[str, Any], tenants: tuple[TenantClient, TenantClient]
) -> None:
    schemas = document["components"]["schemas"]
    for name in ("MemberCreate", "EarnCreate", "OrderCreate", "RuleCreate", "ProductCreate"):
        assert schemas[name]["additionalProperties"] is False, name
    # ... and the server does refuse them.
    a, _ = tenants
    response = await a.http.post("/v1/members", json={"external_id": "x", "nickname": "y"})
    assert response.status_code == 422
