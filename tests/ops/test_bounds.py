"""Bounded work per request: a body is refused before it is buffered past the limit (with
or without `Idempotency-Key`), and deep JSON is a 422, not a stack overflow."""

import asyncio
from urllib.parse import urlsplit

import pytest

from tests.conftest import TenantClient

MIB = 1 << 20


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def _stream_until_answered(
    base_url: str, key: str, headers: dict[str, str], total: int
) -> tuple[bytes, int, int]:
    """POSTs a chunked body of `total` bytes, one MiB at a time, until the server answers.
    Returns the answer's first bytes, the bytes sent, and the largest RSS growth seen."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = [
        "POST /v1/members HTTP/1.1",
        f"Host: {url.netloc}",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    chunk = b"[" + b" " * (MIB - 1)
    baseline, growth, sent = _rss_bytes(), 0, 0
    answer = asyncio.create_task(reader.read(4096))
    try:
        while sent < total and not answer.done():
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
            sent += len(chunk)
            growth = max(growth, _rss_bytes() - baseline)
    except ConnectionError:
        pass  # the server answered and closed while we were still sending
    first = await asyncio.wait_for(answer, timeout=30)
    writer.close()
    return first, sent, growth


@pytest.mark.parametrize("headers", [{"Idempotency-Key": "huge-1"}, {}])
async def test_a_300_mb_body_is_refused_without_buffering_it(
    base_url: str, tenants: tuple[TenantClient, TenantClient], headers: dict[str, str]
) -> None:
    a, _ = tenants
    first, sent, growth = await _stream_until_answered(base_url, a.api_key, headers, 300 * MIB)
    assert first.startswith(b"HTTP/1.1 413"), first[:200]
    assert b"payload_too_large" in first
    assert sent < 300 * MIB
    assert growth < 10 * MIB, growth


@pytest.mark.parametrize("headers", [{"Idempotency-Key": "deep-1"}, {}])
@pytest.mark.parametrize("levels", [33, 1_000, 100_000])
async def test_deep_json_is_422(
    tenants: tuple[TenantClient, TenantClient], headers: dict[str, str], levels: int
) -> None:
    a, _ = tenants
    member = (await a.http.post("/v1/members", json={"external_id": "deep"})).json()["id"]
    nested = "[" * levels + "1" + "]" * levels
    head = f'{{"type": "custom.deep", "member_id": "{member}", '
    body = head + f'"occurred_at": "2026-01-01T00:00:00Z", "data": {{"a": {nested}}}}}'

    response = await a.http.post(
        "/v1/events", content=body, headers={"content-type": "application/json"} | headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["message"] == "nested more than 32 levels deep"


async def test_32_levels_are_fine(tenants: tuple[TenantClient, TenantClient]) -> None:
    a, _ = tenants
    nested: object = 1
    for _ in range(30):  # with the body and `data`, 32 levels
        nested = [nested]
    member = (await a.http.post("/v1/members", json={"external_id": "ok"})).json()["id"]
    response = await a.http.post(
        "/v1/events",
        json={
            "type": "custom.deep",
            "member_id": member,
            "occurred_at": "2026-11-30T00:00:00Z",
            "data": {"a": nested},
        },
    )
    assert response.status_code in (200, 201), response.text
