"""Redis clients for the workers: one that waits out an outage, one that fails fast.

arq's worker loop has no reconnect: the first Redis error a poll meets ends the process. The
worker's own client (`patient_redis`, handed to arq as its pool) therefore retries every
command, with backoff capped at two seconds, for as long as the worker runs: its loop, its
cron and the jobs in flight pause during an outage and carry on when Redis is back (a
restarted, empty Redis too). Once the worker is stopping, errors are raised at once, so a
shutdown during an outage does not wait for Redis. Work that must go on without Redis (the
relay, heartbeats) uses `fast_redis`, which raises at once.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq.connections import ArqRedis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("pointsmall.redis")
T = TypeVar("T")
CONNECT_TIMEOUT = 1.0
# No command the services send blocks on the server: an answer slower than this means a
# Redis (or a network) that is stuck, treated like one that is away.
COMMAND_TIMEOUT = 5.0
REDIS_DOWN = (RedisError, OSError)  # what a Redis that is away raises through either client
_RETRIED = (RedisConnectionError, RedisTimeoutError, OSError)


class WhileRunning(Retry):
    """Retries a failed command forever (backoff 0.1 s doubling to 2 s) until the task in
    `running` has finished, i.e. the worker is shutting down."""

    def __init__(self) -> None:
        # OSError too: a refused connect reaches the retry as one (redis-py converts it after).
        super().__init__(ExponentialBackoff(cap=2.0, base=0.05), -1, _RETRIED)  # type: ignore[arg-type]
        self.running: asyncio.Task[Any] | None = None
        self.down_since: float | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> "WhileRunning":
        return self  # redis-py copies its retry for each connection: one outage state is meant

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]
    ) -> T:
        failures = 0
        while True:
            try:
                result = await do()
            except self._supported_errors as error:
                failures += 1
                await fail(error)  # drops the connection (and raises what is not retryable)
                if self.running is not None and self.running.done():
                    raise
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log.warning("Redis is unavailable (%s); waiting for it", error)
                await asyncio.sleep(self._backoff.compute(failures))
            else:
                if self.down_since is not None:
                    log.warning("Redis is back after %.1f s", time.monotonic() - self.down_since)
                    self.down_since = None
                return result


class _RewatchingPipeline(Pipeline):
    """redis-py raises WatchError when the connection drops while keys are WATCHed; arq
    expects it only from EXEC (where it means "someone else got there first") and its loop
    dies on it anywhere else. Here the keys are watched again on a fresh connection and the
    command repeated: what is read after the new WATCH is guarded as before."""

    _watched: tuple[Any, ...] = ()

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        if args[0] == "WATCH":
            self._watched = args[1:]
        watched = self._watched  # the WatchError comes after a reset that forgets them
        while True:
            try:
                return await super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]
            except WatchError:
                if args[0] == "WATCH" or not watched:
                    raise
                await super().immediate_execute_command("WATCH", *watched)  # type: ignore[no-untyped-call]
                self._watched = watched

    async def reset(self) -> None:
        await super().reset()  # type: ignore[no-untyped-call]
        self._watched = ()


class PatientRedis(ArqRedis):
    """The worker's arq pool: every command waits for Redis (see the module doc)."""

    patience: WhileRunning

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _RewatchingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


def patient_redis(url: str, queue_name: str) -> PatientRedis:
    """Made without connecting (arq's worker connects on its first command)."""
    patience = WhileRunning()
    pool = ConnectionPool.from_url(
        url,
        retry=patience,
        retry_on_error=list(_RETRIED),
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
    )
    redis = PatientRedis(pool, default_queue_name=queue_name)
    redis.patience = patience
    return redis


def fast_redis(url: str, queue_name: str) -> ArqRedis:
    """A client whose commands fail at once when Redis is away (it reconnects on the next)."""
    pool = ConnectionPool.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=COMMAND_TIMEOUT
    )
    return ArqRedis(pool, default_queue_name=queue_name)


def stop_waiting_when_done(redis: ArqRedis) -> None:
    """Called from the worker's start-up hook, which runs inside arq's main task: once that
    task ends (a shutdown), the patient client stops waiting for Redis."""
    if isinstance(redis, PatientRedis):
        redis.patience.running = asyncio.current_task()
