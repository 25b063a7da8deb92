"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its
next request as soon as the last answer arrived. Plain asyncio streams, no HTTP library,
so the generator costs as little CPU as Python allows on the machine it shares."""

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


def post_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run_load(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    connections: int = 32,
    seconds: float = 15.0,
    warmup: float = 2.0,
) -> LoadResult:
    """Drive the server for `warmup + seconds`; only the last `seconds` are counted."""
    result = LoadResult()
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + seconds
    counter = 0

    async def connection() -> None:
        nonlocal counter
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (now := time.perf_counter()) < stop_at:
                counter += 1
                writer.write(make_request(counter))
                status = await _read_response(reader)
                done = time.perf_counter()
                if now >= measure_from:
                    result.requests += 1
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    result.latencies_ms.append((done - now) * 1000)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    result.seconds = seconds
    return result
