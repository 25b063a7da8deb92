"""Conditions that may run long are evaluated in worker processes, with a time budget.

The CEL library holds the GIL while it evaluates (measured: a thread that ticks every
millisecond ticked twice during a 36 s evaluation) and nothing interrupts it, so a thread
would not free the event loop and only ending the process stops an evaluation. Each of a
few threads owns one worker process: a judgement's conditions go to a worker with the
variables, the outcomes come back one by one, and a worker still busy at the deadline is
killed and replaced. The conditions it did not answer are skipped, with the reason.

Run as `python -m pointsmall.rules.sandbox`: the worker, reading jobs on stdin."""

import asyncio
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import IO, Any

BUDGET = 0.25  # seconds for all of one judgement's conditions
WORKERS = 2  # per API process; judgements wait for a free one
MEMORY = 1 << 30  # bytes of address space for a worker (it starts at about 75 MB)
_FRAME = struct.Struct("!I")


class OverBudget(Exception):
    """A condition not answered within the budget."""

    def __init__(self) -> None:
        super().__init__("condition exceeded its time budget")


class OverMemory(Exception):
    def __init__(self) -> None:
        super().__init__("condition exceeded its memory budget")


def _send(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int) -> Any:
    (size,) = _FRAME.unpack(_read(fd, _FRAME.size))
    return pickle.loads(_read(fd, size))  # noqa: S301 - between the API and its own worker


class _Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this module, fixed arguments
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout.fileno()
        self.results = select.poll()  # not select(): the API may hold more than 1,024 files
        self.results.register(self.stdout, select.POLLIN)
        try:
            _receive(self.stdout)  # started: its start-up (0.1 s) is not part of any budget
        except EOFError:
            raise RuntimeError("the condition worker did not start") from None

    def run(self, sources: list[str], variables: dict[str, Any], budget: float) -> list[object]:
        """Each source's outcome: a bool or other value, an exception, or OverBudget."""
        _send(self.stdin, (sources, variables, budget))
        deadline = time.monotonic() + budget
        outcomes: list[object] = []
        while len(outcomes) < len(sources):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.results.poll(remaining * 1000):
                self.process.kill()
                self.process.wait()
                return outcomes + [OverBudget()] * (len(sources) - len(outcomes))
            try:
                outcomes.append(_receive(self.stdout))
            except EOFError:  # it ended by itself: its memory limit
                self.process.wait()
                return outcomes + [OverMemory()] * (len(sources) - len(outcomes))
        return outcomes


_executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="conditions")
_local = threading.local()


def _run(sources: list[str], variables: dict[str, Any], budget: float) -> list[object]:
    worker: _Worker | None = getattr(_local, "worker", None)
    if worker is None or worker.process.poll() is not None:
        worker = _local.worker = _Worker()
    outcomes = worker.run(sources, variables, budget)
    if worker.process.poll() is not None:
        # Replaced now, so the judgement that overran waits for it rather than the next one.
        _local.worker = _Worker()
    return outcomes


async def run(
    sources: list[str], variables: dict[str, Any], budget: float = BUDGET
) -> list[object]:
    """Evaluate conditions (compiled sources) in a worker, off the event loop; the budget
    counts from when a worker takes them."""
    return await asyncio.get_running_loop().run_in_executor(
        _executor, _run, sources, variables, budget
    )


# --- the worker ------------------------------------------------------------------------------


def _portable(exc: Exception) -> Exception:
    """What goes back for the engine's reason: builtin exceptions pickle as they are."""
    if isinstance(exc, MemoryError):
        return OverMemory()
    if type(exc).__module__ == "builtins":
        return exc
    return RuntimeError(str(exc))


def _serve() -> None:
    # `cel` imports its command line (prompt_toolkit: 0.6 s); a worker needs only the
    # extension, and a killed worker's replacement should start at once.
    sys.modules.setdefault("cel.cli", ModuleType("cel.cli"))
    import cel

    from pointsmall.rules.conditions import ACCESSORS

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    jobs, results = sys.stdin.buffer.fileno(), sys.stdout.buffer
    sys.stdout = sys.stderr  # the pipe carries frames only
    programs: dict[str, Any] = {}
    _send(results, "ready")
    while True:
        try:
            sources, variables, budget = _receive(jobs)
        except EOFError:
            return  # the API process has gone
        # Should the API die before it can kill us, SIGALRM's default action ends us.
        signal.setitimer(signal.ITIMER_REAL, budget + 1)
        try:
            context: Any = cel.Context(variables=variables, functions=ACCESSORS)
        except Exception as exc:
            context = _portable(exc)
        for source in sources:
            outcome: object
            try:
                if isinstance(context, Exception):
                    raise context
                if source not in programs:
                    if len(programs) >= 1000:
                        programs.clear()
                    programs[source] = cel.compile(source)
                outcome = programs[source].execute(context)
                if not isinstance(outcome, bool):
                    outcome = TypeError("the condition is not a boolean")
            except Exception as exc:
                outcome = _portable(exc)
            _send(results, outcome)
        signal.setitimer(signal.ITIMER_REAL, 0)


if __name__ == "__main__":
    _serve()
