"""Operations endpoints, the OpenAPI document, request ids and JSON logs."""

import json
import logging

import httpx
import pytest

from tests.conftest import TenantClient


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_metrics_count_requests(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "pointsmall_requests_total" in metrics.text
    assert 'path="/healthz"' in metrics.text


async def test_openapi_describes_every_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    paths = spec["paths"]
    for path, method in [
        ("/signup", "post"),
        ("/v1/members", "post"),
        ("/v1/members", "get"),
        ("/v1/members/{member_id}", "get"),
        ("/v1/members/{member_id}", "patch"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys/{key_id}", "delete"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths[path], (path, method)
    member_post = paths["/v1/members"]["post"]
    assert {"201", "401", "409", "422"} <= set(member_post["responses"])
    assert "application/problem+json" in member_post["responses"]["422"]["content"]
    assert member_post["security"] == [{"ApiKey": []}]
    assert spec["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "Problem" in spec["components"]["schemas"]


async def test_request_id_echoed_and_logged(
    tenants: tuple[TenantClient, TenantClient], caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = tenants
    with caplog.at_level(logging.INFO, logger="pointsmall.access"):
        mine = await a.http.get("/v1/members", headers={"X-Request-Id": "trace-123"})
        made = await a.http.get("/v1/members", headers={"X-Request-Id": "bad id with spaces"})
    assert mine.headers["x-request-id"] == "trace-123"
    assert made.headers["x-request-id"].startswith("req_")
    records = [r for r in caplog.records if r.name == "pointsmall.access"]
    assert any(getattr(r, "request_id", None) == "trace-123" and r.status == 200 for r in records)  # type: ignore[attr-defined]


def test_log_lines_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    from pointsmall.observability import configure_logging, request_id_var

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        token = request_id_var.set("req_abc")
        logging.getLogger("pointsmall.test").info("hello", extra={"member_id": "mem_1"})
        request_id_var.reset(token)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["message"] == "hello"
    assert record["request_id"] == "req_abc"
    assert record["level"] == "INFO"
    assert record["member_id"] == "mem_1"
