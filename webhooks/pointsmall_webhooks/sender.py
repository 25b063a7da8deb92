"""One POST of one message to one endpoint, through the SSRF-guarded connection pool."""

import time
from dataclasses import dataclass

import httpcore

from pointsmall_webhooks.policy import TIMEOUT_SECONDS
from pointsmall_webhooks.ssrf import GuardedBackend, UnsafeTarget

EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class Response:
    status: int | None  # None: no HTTP answer (refused target, network error, timeout)
    latency_ms: int
    excerpt: str | None
    error: str | None
    retry_after: str | None


def connection_pool(
    *, allow_private: bool, max_connections: int = 200
) -> httpcore.AsyncConnectionPool:
    return httpcore.AsyncConnectionPool(
        max_connections=max_connections,
        keepalive_expiry=30,
        network_backend=GuardedBackend(allow_private=allow_private),
    )


async def post(
    pool: httpcore.AsyncConnectionPool, url: str, headers: dict[str, str], body: bytes
) -> Response:
    """Redirects are never followed (httpcore does not): a 3xx is an answer like any other."""
    timeout = {
        "connect": TIMEOUT_SECONDS,
        "read": TIMEOUT_SECONDS,
        "write": TIMEOUT_SECONDS,
        "pool": TIMEOUT_SECONDS,
    }
    sent = {
        **headers,
        "content-type": "application/json",
        "user-agent": "Pointsmall-Webhooks/1",
    }
    started = time.perf_counter()
    try:
        async with pool.stream(
            "POST", url, headers=list(sent.items()), content=body, extensions={"timeout": timeout}
        ) as response:
            head = b""
            async for chunk in response.aiter_stream():
                head += chunk
                if len(head) >= EXCERPT_BYTES:
                    break  # a receiver's long answer is not ours to read
    except UnsafeTarget as exc:
        return Response(None, _ms(started), None, f"unsafe target: {exc}", None)
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        return Response(None, _ms(started), None, f"{type(exc).__name__}: {exc}"[:500], None)
    except httpcore.UnsupportedProtocol as exc:
        return Response(None, _ms(started), None, f"unsupported: {exc}"[:500], None)
    excerpt = head[:EXCERPT_BYTES].decode("utf-8", "replace")
    retry_after = next(
        (v.decode("latin-1") for k, v in response.headers if k.lower() == b"retry-after"), None
    )
    return Response(response.status, _ms(started), excerpt, None, retry_after)


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
