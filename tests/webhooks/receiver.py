"""A real HTTP receiver on loopback that records what it is sent and answers as told."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn


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
    delay: float = 0.0

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
        if self.delay:
            await asyncio.sleep(self.delay)
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def receiving(host: str = "127.0.0.1", port: int | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver()
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(receiver, host=host, port=port, log_level="error"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    receiver.url = f"http://{host}:{port}/hook"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
