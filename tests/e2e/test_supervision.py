"""`pointsmall dev` supervises its children (the API, both workers, the embedded Redis and
PostgreSQL): one SIGKILLed is back and serving within 10 s; SIGTERM stops them all; a
SIGKILLed `pointsmall dev` leaves no process behind; a crash loop stops everything.

Real processes on the embedded servers, as `make run` on a fresh machine. What is left of a
`pointsmall dev` is found by its session (it leads one: everything it starts stays in it)."""

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from pointsmall.supervisor import Child, Policy, Supervisor
from tests.conftest import free_port

CHILDREN = ("api", "worker", "webhooks-worker", "redis", "postgres")


def _stat(pid: int) -> list[str] | None:
    """state, ppid, pgrp, session, ... of a process not yet gone (zombies are gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields


def _live() -> dict[int, list[str]]:
    pids = (int(name) for name in os.listdir("/proc") if name.isdigit())
    return {pid: fields for pid in pids if (fields := _stat(pid))}


def _session(sid: int) -> list[int]:
    return [pid for pid, fields in _live().items() if int(fields[3]) == sid]


def _descendants(root: int) -> set[int]:
    """Every live process under `root` (postgres's own processes leave its session)."""
    children: dict[int, list[int]] = {}
    for pid, fields in _live().items():
        children.setdefault(int(fields[1]), []).append(pid)
    found, todo = set(), [root]
    while todo:
        found.update(new := children.get(todo.pop(), []))
        todo.extend(new)
    return found


async def _until(check: Callable[[], bool], deadline: float, what: str) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in time: {what}")
        await asyncio.sleep(0.05)


class Dev:
    """A `pointsmall dev` on a data dir of its own; its JSON logs say which pid each child has."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2)
        self.pids: dict[str, int] = {}
        self.output: list[bytes] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.append(line)
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if (
                    record.get("logger") == "pointsmall.supervisor"
                    and record["message"] == "started"
                ):
                    self.pids[record["child"]] = record["pid"]

    def log(self) -> str:
        return b"".join(self.output).decode(errors="replace")

    async def serving(self, deadline: float) -> None:
        """/readyz answers 200, the database and Redis ok."""
        while True:
            with contextlib.suppress(httpx.HTTPError):
                ready = await self.http.get("/readyz")
                checks = ready.json().get("checks", {})
                if (
                    ready.status_code == 200
                    and checks.get("database") == checks.get("redis") == "ok"
                ):
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"not serving in time\n{self.log()[-4000:]}")
            await asyncio.sleep(0.1)

    def session(self) -> list[int]:
        return _session(self.process.pid)

    async def close(self) -> None:
        """Whatever happened: nothing of it left (the tests check that before this)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        for pid in self.session():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await self.http.aclose()
        await self.reader


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One for the module: initdb once."""
    return tmp_path_factory.mktemp("supervised") / "data"


@contextlib.asynccontextmanager
async def _dev(data_dir: Path) -> AsyncIterator[Dev]:
    port = free_port()
    unset = ("DATABASE_URL", "REDIS_URL", "XDG_RUNTIME_DIR")  # as on a fresh machine
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env |= {"POINTSMALL_DATA_DIR": str(data_dir), "PORT": str(port), "LOG_LEVEL": "INFO"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "pointsmall", "dev"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    dev = Dev(process, port)
    try:
        await dev.serving(time.monotonic() + 90)
        await _until(lambda: set(CHILDREN) <= dev.pids.keys(), time.monotonic() + 10, "children")
        yield dev
    finally:
        await dev.close()


async def test_a_killed_child_is_back_within_10s_and_sigterm_stops_all(data_dir: Path) -> None:
    async with _dev(data_dir) as dev:
        for name in CHILDREN:
            old = dev.pids[name]
            killed = time.monotonic()
            os.kill(old, signal.SIGKILL)
            await _until(lambda: dev.pids[name] != old, killed + 10, f"{name} restarted")  # noqa: B023
            assert _stat(dev.pids[name]) is not None, dev.log()
            await dev.serving(killed + 10)

        # Every child, the PostgreSQL restarted above too, and what they forked.
        descendants = _descendants(dev.process.pid)
        dev.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(dev.process.wait(), 30) == 0
        assert not descendants & _live().keys()
        assert not dev.session()
    log = dev.log()
    for name in CHILDREN:
        assert f'"message": "exited; restarting", "child": "{name}"' in log
        assert f'"message": "stopped", "child": "{name}"' in log


async def test_a_killed_dev_leaves_no_process(data_dir: Path) -> None:
    async with _dev(data_dir) as dev:
        # its five children, granian's worker, postgres's own processes and sessions
        descendants = _descendants(dev.process.pid)
        assert len(descendants) > 10
        dev.process.kill()
        await dev.process.wait()

        def gone() -> bool:
            return not dev.session() and not descendants & _live().keys()

        await _until(gone, time.monotonic() + 15, "no process left")


async def test_a_crash_loop_stops_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pointsmall.supervisor")
    supervisor = Supervisor(Policy(backoff=0.01, max_backoff=0.01, max_restarts=3, window=30))
    try:
        await supervisor.start(
            Child("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
        )
        await supervisor.start(Child("crashing", [sys.executable, "-c", "raise SystemExit(3)"]), 1)
        assert await asyncio.wait_for(supervisor.wait(), 30) == 1
    finally:
        await supervisor.stop_all()
    assert supervisor.failed == "crashing"
    restarts = [r for r in caplog.records if r.getMessage() == "exited; restarting"]
    assert [(r.child, r.exit_code, r.restarts) for r in restarts] == [  # type: ignore[attr-defined]
        ("crashing", 3, 1),
        ("crashing", 3, 2),
        ("crashing", 3, 3),
    ]
    assert any(
        r.levelno == logging.CRITICAL and "giving up" in r.getMessage() for r in caplog.records
    )
    stopped = {r.child: r.__dict__ for r in caplog.records if r.getMessage() == "stopped"}  # type: ignore[attr-defined]
    assert stopped["steady"]["signal"] == "SIGTERM"
    assert stopped["crashing"]["exit_code"] == 3


async def test_a_child_that_will_not_stop_is_killed_with_what_it_forked(tmp_path: Path) -> None:
    grandchild = tmp_path / "grandchild"
    stubborn = (
        "import signal, subprocess, time, pathlib;"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        f"pathlib.Path({str(grandchild)!r}).write_text(str(subprocess.Popen(['sleep', '60']).pid));"
        "time.sleep(60)"
    )
    supervisor = Supervisor(Policy(stop_timeout=0.5))
    await supervisor.start(
        Child(
            "stubborn",
            [sys.executable, "-c", stubborn],
            ready=lambda _: grandchild.exists() and grandchild.read_text() != "",
        )
    )
    sleeper = int(grandchild.read_text())
    started = time.monotonic()
    await supervisor.stop_all()
    assert time.monotonic() - started < 5
    assert _stat(sleeper) is None
