"""`pointsmall dev`'s supervisor: runs each part of the service as a child process, restarts
one that dies (with backoff, giving up on a crash loop), and leaves nothing behind.

- Each child leads a process group of its own, so what it forks (granian's workers) is
  killed with it (postgres's own processes leave the group, and exit with their
  postmaster), and Ctrl-C reaches only the supervisor, which stops the children in order:
  the API and workers first, then Redis and PostgreSQL.
- Each child gets PR_SET_PDEATHSIG (Linux): if the supervisor is SIGKILLed, the kernel
  sends the child its stop signal, and the child takes its own group down.
- A child that dies is restarted after 0.5 s, doubling per restart in the last minute up
  to 5 s; the sixth crash within a minute stops everything (exit 1), loudly.

Production does not use this: Kubernetes or systemd run each command (see infra/README.md).
"""

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pointsmall.settings import Settings

log = logging.getLogger("pointsmall.supervisor")

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn`: the kernel sends `sig` to the child when its parent dies (Linux only;
    elsewhere nothing). It runs after any change of user, which would clear the setting."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

    def preexec() -> None:
        if prctl is None:
            return
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl: no signal will come
            os.kill(os.getpid(), sig)

    return preexec


@dataclass(frozen=True)
class Child:
    name: str
    argv: list[str]
    stop_signal: int = signal.SIGTERM  # asked to stop with this; killed after Policy.stop_timeout
    user: str | None = None
    output: Path | None = None  # stdout and stderr go here (appended); None: the supervisor's
    ready: Callable[[int], bool] | None = None  # given the pid: serving? (waited for at start)
    before_start: Callable[[], None] | None = None  # run (in a thread) before each start


@dataclass(frozen=True)
class Policy:
    backoff: float = 0.5  # the first restart's delay, doubled for each restart in the window
    max_backoff: float = 5.0
    max_restarts: int = 5  # within `window` seconds; one more death and we give up
    window: float = 60.0
    ready_timeout: float = 60.0
    stop_timeout: float = 10.0


class StartFailed(Exception):
    pass


class Stopped(Exception):
    """A stop was asked for while starting."""


@dataclass
class _Running:
    child: Child
    process: asyncio.subprocess.Process
    layer: int
    deaths: deque[float] = field(default_factory=deque)
    watcher: asyncio.Task[None] | None = None


def _describe(code: int) -> dict[str, Any]:
    return {"signal": signal.Signals(-code).name} if code < 0 else {"exit_code": code}


def _group_alive(pgid: int) -> bool:
    """Any process of the group still running? (zombies do not count: no one may reap them)"""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc/self"):
        return True
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
            if int(pgrp) == pgid and state != "Z":
                return True
    return False


async def _clear_group(pgid: int) -> None:
    """Kill what is left of a child's process group (its leader has exited) and wait up to
    5 s for it to go: a new API could not bind its port beside the old granian worker."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    for _ in range(100):  # nothing to await but the kernel: poll
        if not _group_alive(pgid):
            return
        await asyncio.sleep(0.05)


class Supervisor:
    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.failed: str | None = None  # the child we gave up on
        self._running: list[_Running] = []
        self._stop = asyncio.Event()

    def handle_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():  # asked twice: stop waiting for anyone
            log.warning("killing every child", extra={"signal": sig.name})
            for running in self._running:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(running.process.pid, signal.SIGKILL)
            return
        log.info("stopping", extra={"signal": sig.name})
        self._stop.set()

    async def _spawn(self, child: Child) -> asyncio.subprocess.Process:
        if child.before_start is not None:
            await asyncio.to_thread(child.before_start)
        output: IO[bytes] | None = child.output.open("ab") if child.output else None
        try:
            process = await asyncio.create_subprocess_exec(
                *child.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                user=child.user,
                process_group=0,
                preexec_fn=die_with_parent(child.stop_signal),
            )
        finally:
            if output is not None:
                output.close()
        log.info("started", extra={"child": child.name, "pid": process.pid})
        return process

    async def start(self, child: Child, layer: int = 0) -> None:
        """Start a child, wait until it is ready, and watch it from then on. Layers stop in
        reverse order: what others depend on goes in a lower layer."""
        process = await self._spawn(child)
        running = _Running(child, process, layer)
        self._running.append(running)
        failure = await self._until_ready(child, process)
        if failure == "stopped":
            raise Stopped
        if failure is not None:
            raise StartFailed(failure)
        running.watcher = asyncio.create_task(self._watch(running))

    async def _until_ready(self, child: Child, process: asyncio.subprocess.Process) -> str | None:
        """Wait until a child with a readiness check serves, and log "ready" (at start and
        after every restart, so whoever watches the log knows when it answers again).
        None when ready; otherwise why not."""
        if child.ready is None:
            return None
        deadline = time.monotonic() + self.policy.ready_timeout
        while not child.ready(process.pid):
            if self._stop.is_set():
                return "stopped"
            if process.returncode is not None:
                return f"{child.name} exited ({_describe(process.returncode)})"
            if time.monotonic() > deadline:
                return f"{child.name} was not ready in {self.policy.ready_timeout}s"
            await asyncio.sleep(0.05)
        log.info("ready", extra={"child": child.name, "pid": process.pid})
        return None

    async def run_once(self, child: Child) -> None:
        """Run a one-off step (migrations) to its end; StartFailed unless it exits 0."""
        process = await self._spawn(child)
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait(
                {asyncio.create_task(process.wait()), stop}, return_when="FIRST_COMPLETED"
            )
        finally:
            stop.cancel()
        if process.returncode is None:
            await self._stop_process(child, process)
            raise Stopped
        log.info(
            "exited",
            extra={"child": child.name, "pid": process.pid} | _describe(process.returncode),
        )
        await _clear_group(process.pid)
        if process.returncode != 0:
            raise StartFailed(f"{child.name} failed ({_describe(process.returncode)})")

    async def _watch(self, running: _Running) -> None:
        child, policy = running.child, self.policy
        while True:
            code = await running.process.wait()
            await _clear_group(running.process.pid)
            if self._stop.is_set():
                return
            now = time.monotonic()
            running.deaths.append(now)
            while running.deaths[0] < now - policy.window:
                running.deaths.popleft()
            restarts = len(running.deaths)
            about = {"child": child.name, "pid": running.process.pid} | _describe(code)
            if restarts > policy.max_restarts:
                log.critical(
                    f"{child.name} keeps dying ({restarts} times in {policy.window:.0f}s): "
                    "giving up and stopping everything",
                    extra=about,
                )
                self.failed = child.name
                self._stop.set()
                return
            delay = min(policy.backoff * 2 ** (restarts - 1), policy.max_backoff)
            log.error(
                "exited; restarting", extra=about | {"restart_in": delay, "restarts": restarts}
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
                return
            try:
                running.process = await self._spawn(child)
            except Exception:  # cannot even start it (binary gone, no permission): no point
                log.critical(
                    f"{child.name} cannot be restarted: stopping everything", exc_info=True
                )
                self.failed = child.name
                self._stop.set()
                return
            failure = await self._until_ready(child, running.process)
            if failure not in (None, "stopped"):
                log.warning(failure, extra={"child": child.name, "pid": running.process.pid})

    async def wait(self) -> int:
        """Until a stop is asked for or a child crash-loops: 0, or 1 if we gave up."""
        await self._stop.wait()
        return 1 if self.failed else 0

    async def stop_all(self) -> None:
        self._stop.set()
        for layer in sorted({r.layer for r in self._running}, reverse=True):
            await asyncio.gather(*(self._stop_one(r) for r in self._running if r.layer == layer))

    async def _stop_one(self, running: _Running) -> None:
        if running.watcher is not None:
            running.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.watcher
        await self._stop_process(running.child, running.process)

    async def _stop_process(self, child: Child, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(child.stop_signal)
            try:
                await asyncio.wait_for(process.wait(), self.policy.stop_timeout)
            except TimeoutError:
                log.warning("did not stop in time: killed", extra={"child": child.name})
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        await _clear_group(process.pid)
        assert process.returncode is not None
        about = {"child": child.name, "pid": process.pid} | _describe(process.returncode)
        log.info("stopped", extra=about)


def _pointsmall(name: str, command: str) -> Child:
    return Child(name, [sys.executable, "-m", "pointsmall", command])


async def _start_postgres(supervisor: Supervisor, data_dir: Path) -> str:
    from pointsmall import embedded

    postgres = await asyncio.to_thread(embedded.prepare_postgres, data_dir)
    other = embedded.running_postmaster(postgres.pgdata)
    if other is not None:
        log.warning(
            f"a PostgreSQL this supervisor did not start serves {postgres.pgdata} "
            f"(pid {other}): using it, unsupervised"
        )
        return await asyncio.to_thread(embedded.start_shared_postgres, data_dir)
    child = Child(
        "postgres",
        postgres.argv,
        stop_signal=signal.SIGINT,  # fast shutdown: ends sessions, checkpoints, exits
        user=postgres.user,
        output=postgres.log,
        ready=postgres.ready,
        before_start=lambda: _stop_stray_postgres(postgres.pgdata),
    )
    await supervisor.start(child)
    return postgres.uri


def _stop_stray_postgres(pgdata: Path) -> None:
    """Before a restart: a server on our data dir that is not our child (`pg_ctl restart`
    daemonizes one) would keep ours from starting, and outlive us. Stop it."""
    from pointsmall import embedded

    stray = embedded.stop_postmaster(pgdata)
    if stray is not None:
        log.warning(
            f"stopped a PostgreSQL on {pgdata} that this supervisor did not start (pid {stray})"
        )


async def _start_redis(supervisor: Supervisor, data_dir: Path) -> str:
    from pointsmall import embedded

    port = embedded.free_port()  # kept across restarts: the children have the URL
    argv = embedded.redis_argv(data_dir, port)
    output = data_dir / "redis" / "redis.log"
    await supervisor.start(
        Child("redis", argv, output=output, ready=lambda _: embedded.redis_ready(port))
    )
    return f"redis://127.0.0.1:{port}/0"


async def _dev(settings: Settings, supervisor: Supervisor) -> int:
    from pointsmall import embedded

    embedded_services = not (settings.database_url and settings.redis_url)
    if embedded_services and not embedded.claim_data_dir(settings.data_dir):
        log.error(f"another `pointsmall dev` runs on {settings.data_dir}")
        return 1
    database_url = settings.database_url or await _start_postgres(supervisor, settings.data_dir)
    redis_url = settings.redis_url or await _start_redis(supervisor, settings.data_dir)
    os.environ["DATABASE_URL"] = database_url  # the children read them
    os.environ["REDIS_URL"] = redis_url
    await supervisor.run_once(_pointsmall("migrate", "migrate"))
    for name, command in (
        ("api", "serve"),
        ("worker", "worker"),
        ("webhooks-worker", "webhooks-worker"),
    ):
        await supervisor.start(_pointsmall(name, command), layer=1)
    return await supervisor.wait()


def run_dev(settings: Settings) -> int:
    """Embedded services when no URLs, migrations, then the API and both workers, supervised
    until SIGINT/SIGTERM (0) or a crash loop (1)."""
    from pointsmall.observability import configure_logging

    configure_logging(settings.log_level)

    async def main() -> int:
        supervisor = Supervisor()
        supervisor.handle_signals()
        try:
            return await _dev(settings, supervisor)
        except Stopped:
            return 0
        except StartFailed as failed:
            log.critical(f"could not start: {failed}")
            return 1
        finally:
            await supervisor.stop_all()

    return asyncio.run(main())
