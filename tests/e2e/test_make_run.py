"""`pointsmall dev` (what `make run` runs) on a machine with no DATABASE_URL or REDIS_URL:
it starts the embedded PostgreSQL and Redis, migrates, and serves the API and its docs."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from tests.conftest import free_port


async def _wait_for_line(stream: asyncio.StreamReader, needle: bytes, seen: list[bytes]) -> None:
    while True:
        line = await stream.readline()
        if not line:
            raise AssertionError(b"".join(seen).decode(errors="replace"))
        seen.append(line)
        if needle in line:
            return


async def test_dev_serves_with_embedded_services(tmp_path: Path) -> None:
    port = free_port()
    unset = ("DATABASE_URL", "REDIS_URL", "XDG_RUNTIME_DIR")  # as on a fresh machine
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env |= {
        "POINTSMALL_DATA_DIR": str(tmp_path / "data"),
        "PORT": str(port),
        "LOG_LEVEL": "INFO",  # what a developer sees: it should hold nothing but news
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pointsmall",
        "dev",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its signals stay within its own process group
    )
    assert process.stdout is not None
    seen: list[bytes] = []
    drain: asyncio.Task[bytes] | None = None
    try:
        await asyncio.wait_for(_wait_for_line(process.stdout, b"Started worker", seen), timeout=120)
        drain = asyncio.create_task(process.stdout.read())  # keep the pipe from filling
        # The worker may still be binding: retry refused connections (httpx backs off).
        transport = httpx.AsyncHTTPTransport(retries=8)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, transport=transport
        ) as http:
            assert (await http.get("/healthz")).json()["status"] == "ok"
            assert (await http.get("/readyz")).json()["checks"] == {"database": "ok", "redis": "ok"}
            assert "/v1/members" in (await http.get("/schema/openapi.json")).json()["paths"]
            signup = await http.post(
                "/signup",
                json={
                    "merchant_name": "Embedded",
                    "admin_email": "a@b.example",
                    "password": "x" * 12,
                },
            )
            assert signup.status_code == 201, signup.text
            auth = {"Authorization": f"Bearer {signup.json()['api_key']}"}
            created = await http.post("/v1/members", json={"external_id": "e1"}, headers=auth)
            assert created.status_code == 201
        assert (tmp_path / "data" / "pg").is_dir()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as in a terminal
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()
    output = b"".join(seen) + (await drain if drain is not None else b"")
    # Start-up and signups are quiet: no platform warning, no migration chatter.
    assert b"RuntimeDirWarning" not in output, output.decode(errors="replace")
    assert b"Context impl" not in output, output.decode(errors="replace")
    assert b"Will assume transactional DDL" not in output
