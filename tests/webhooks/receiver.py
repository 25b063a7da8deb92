"""A real HTTP receiver on loopback that records what it is sent and answers as told."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import serve_asgi


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # Answers wait while the gate is closed: a receiver that is slow for as long as a test says.
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        # Recorded on arrival: the sender may never hear the answer.
        self.received.append(Received({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        async with self.arrived:
            self.arrived.notify_all()
        await self.gate.wait()
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]

    async def until(self, condition: Callable[["Receiver"], bool], seconds: float) -> None:
        """Wait until `condition` holds, woken by each arrival (TimeoutError after `seconds`)."""
        async with asyncio.timeout(seconds), self.arrived:
            await self.arrived.wait_for(lambda: condition(self))


@asynccontextmanager
async def receiving(port: int | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver()
    receiver.gate.set()
    async with serve_asgi(receiver, port) as url:
        receiver.url = f"{url}/hook"
        yield receiver
