"""Enqueue many arq jobs in one round trip. `ArqRedis.enqueue_job` spends three round trips
per job (WATCH, EXISTS, MULTI/EXEC); the webhook relay enqueues hundreds at a time. This
writes exactly the keys `enqueue_job` writes (the pickled job under `arq:job:<id>`, the id
in the queue's sorted set, scored by when it may run), under the same rule: an id whose job
or result still exists is skipped, so enqueueing twice runs once."""

from collections.abc import Sequence
from typing import Any

from arq.connections import ArqRedis
from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

# KEYS[1]: the queue. ARGV: job prefix, result prefix, expiry (ms), score, then id/job pairs.
_SCRIPT = """
local queued = 0
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('EXISTS', ARGV[2] .. id) == 0
     and redis.call('SET', ARGV[1] .. id, ARGV[i + 1], 'PX', ARGV[3], 'NX') then
    redis.call('ZADD', KEYS[1], ARGV[4], id)
    queued = queued + 1
  end
end
return queued
"""


async def enqueue_many(
    redis: ArqRedis, queue: str, function: str, jobs: Sequence[tuple[str, tuple[Any, ...]]]
) -> int:
    """Enqueue `function(*args)` for each (job id, args), to run now; returns how many
    were new."""
    if not jobs:
        return 0
    now = timestamp_ms()
    argv: list[Any] = [job_key_prefix, result_key_prefix, expires_extra_ms, now]
    for job_id, args in jobs:
        argv += [job_id, serialize_job(function, args, {}, None, now)]
    queued: int = await redis.eval(_SCRIPT, 1, queue, *argv)  # type: ignore[misc]
    return queued
