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


async def _all_exit(pids: set[int], seconds: float) -> None:
    """Wait until every process in `pids` has exited: a pidfd becomes readable when its
    process ends, so this waits on the kernel's word rather than polling /proc."""
    loop = asyncio.get_running_loop()
    waits: list[asyncio.Future[None]] = []
    fds: list[int] = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # already gone
        fds.append(fd)
        done: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, lambda d=done: d.done() or d.set_result(None))  # type: ignore[misc]
        waits.append(done)
    try:
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), seconds)
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)


class Dev:
    """A `pointsmall dev` on a data dir of its own; its JSON logs say which pid each child has."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        # Retries refused connections (with the transport's own backoff) while the API binds.
        transport = httpx.AsyncHTTPTransport(retries=12)
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=2, transport=transport
        )
        self.pids: dict[str, int] = {}
        self.ready: dict[str, int] = {}  # child -> pid the supervisor last found ready
        self.output: list[bytes] = []
        self.logged = asyncio.Condition()  # notified on each line the supervisor writes
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.append(line)
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("logger") == "pointsmall.supervisor":
                    if record["message"] == "started":
                        self.pids[record["child"]] = record["pid"]
                    elif record["message"] == "ready":
                        self.ready[record["child"]] = record["pid"]
            async with self.logged:
                self.logged.notify_all()
        async with self.logged:  # the output ended: no waiter should wait for more
            self.logged.notify_all()

    async def until(self, check: Callable[[], bool], seconds: float, what: str) -> None:
        """Wait (on the supervisor's log, not a clock) until `check` holds."""

        def settled() -> bool:
            return check() or self.reader.done()

        try:
            async with self.logged:
                await asyncio.wait_for(self.logged.wait_for(settled), seconds)
        except TimeoutError:
            raise AssertionError(f"not in time: {what}\n{self.log()[-4000:]}") from None
        assert check(), f"the supervisor's output ended before: {what}\n{self.log()[-4000:]}"

    def log(self) -> str:
        return b"".join(self.output).decode(errors="replace")

    async def serving(self, seconds: float) -> None:
        """/readyz answers 200, the database and Redis ok. Called once the supervisor has
        said its children are up: the transport's own retries cover the API binding its
        port, and a connection left over from before a PostgreSQL restart fails one check
        and is dropped, so a few checks in a row settle it."""
        ready = None
        for _ in range(5):
            with contextlib.suppress(httpx.HTTPError):
                ready = await asyncio.wait_for(self.http.get("/readyz"), seconds)
                checks = ready.json().get("checks", {})
                if (
                    ready.status_code == 200
                    and checks.get("database") == checks.get("redis") == "ok"
                ):
                    return
        raise AssertionError(f"not serving: {ready and ready.text}\n{self.log()[-4000:]}")

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
        await dev.until(
            lambda: set(CHILDREN) <= dev.pids.keys() and {"redis", "postgres"} <= dev.ready.keys(),
            90,
            "every child started, PostgreSQL and Redis ready",
        )
        await dev.serving(10)
        yield dev
    finally:
        await dev.close()


async def test_a_killed_child_is_back_within_10s_and_sigterm_stops_all(data_dir: Path) -> None:
    async with _dev(data_dir) as dev:
        for name in CHILDREN:
            old = dev.pids[name]
            killed = time.monotonic()
            os.kill(old, signal.SIGKILL)

            def back(name: str = name, old: int = old) -> bool:
                # A server is back when the supervisor has found the new one ready.
                restarted = dev.pids[name] != old
                return restarted and (name not in ("redis", "postgres") or dev.ready[name] != old)

            await dev.until(back, 10, f"{name} restarted")
            assert _stat(dev.pids[name]) is not None, dev.log()
            await dev.serving(max(0.5, killed + 10 - time.monotonic()))
            assert time.monotonic() - killed < 10, f"{name} took too long"

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
        session = set(dev.session())
        dev.process.kill()
        await dev.process.wait()
        await _all_exit(descendants | session, 15)
        assert not dev.session()
        assert not descendants & _live().keys()


async def test_a_crash_loop_stops_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pointsmall.supervisor")
    supervisor = Supervisor(Policy(backoff=0.01, max_backoff=0.01, max_restarts=3, window=30))
    try:
        await supervisor.start(
            Child("steady", [sys.executable, "-c", "import signal; signal.pause()"])
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
        f"pathlib.Path({str(grandchild)!r}).write_text("
        "str(subprocess.Popen(['python3', '-c', 'import signal; signal.pause()']).pid));"
        "signal.pause()"
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
