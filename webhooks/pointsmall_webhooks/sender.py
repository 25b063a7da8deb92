"""One POST of one message to one endpoint, through an SSRF-guarded aiohttp session."""

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from pointsmall_webhooks.policy import TIMEOUT_SECONDS
from pointsmall_webhooks.ssrf import GuardedResolver, UnsafeTarget, check_literal

EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class Response:
    status: int | None  # None: no HTTP answer (refused target, network error, timeout)
    latency_ms: int
    excerpt: str | None
    error: str | None
    retry_after: str | None


class Sender:
    """Keep-alive connections to receivers; every address connected to was judged first."""

    def __init__(self, *, allow_private: bool, max_connections: int = 500) -> None:
        self.allow_private = allow_private
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_connections,
                limit_per_host=100,
                resolver=GuardedResolver(allow_private=allow_private),
                ttl_dns_cache=10,
            ),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
            headers={"User-Agent": "Pointsmall-Webhooks/1"},
            skip_auto_headers=("Accept-Encoding",),
            auto_decompress=False,
        )

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Response:
        """Redirects are never followed: a 3xx is an answer like any other."""
        started = time.perf_counter()
        try:
            check_literal(urlsplit(url).hostname or "", allow_private=self.allow_private)
            async with self.session.post(
                url,
                data=body,
                headers={**headers, "Content-Type": "application/json"},
                allow_redirects=False,
            ) as response:
                head = await response.content.read(EXCERPT_BYTES)  # not a byte more
                return Response(
                    response.status,
                    _ms(started),
                    head.decode("utf-8", "replace"),
                    None,
                    response.headers.get("Retry-After"),
                )
        except UnsafeTarget as exc:
            return Response(None, _ms(started), None, f"unsafe target: {exc}", None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return Response(None, _ms(started), None, f"{type(exc).__name__}: {exc}"[:500], None)

    async def aclose(self) -> None:
        await self.session.close()


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
