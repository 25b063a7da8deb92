"""What an attempt's outcome means: success, a retry after how long, or the end."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

# After the first attempt (immediately): the Standard Webhooks example schedule, continued
# at 10 h so the retries span about three days (12 attempts in 67.6 h).
RETRY_DELAYS = [
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    *[timedelta(hours=10)] * 6,
]
TIMEOUT_SECONDS = 15.0
DISABLE_AFTER = timedelta(days=5)  # of continuous failure
LONGEST_RETRY_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # succeeded | retry | failed (no attempts left) | endpoint_gone (410)
    retry_at: datetime | None = None


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as seconds or an HTTP date."""
    if not value:
        return None
    try:
        return timedelta(seconds=max(0, int(value.strip())))
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value) - now, timedelta(0))
    except (TypeError, ValueError):
        return None


def judge(
    status: int | None, retry_after_header: str | None, attempts_made: int, now: datetime
) -> Verdict:
    """`status` None is a network failure or a refused target. 2xx succeeds; 3xx fails
    (redirects are not followed); 410 ends the endpoint; 429 and 503 wait at least their
    `Retry-After`; anything else retries on the schedule until it runs out."""
    if status is not None and 200 <= status < 300:
        return Verdict("succeeded")
    if status == 410:
        return Verdict("endpoint_gone")
    if attempts_made > len(RETRY_DELAYS):
        return Verdict("failed")
    delay = RETRY_DELAYS[attempts_made - 1]
    if status in (429, 503):
        asked = retry_after(retry_after_header, now)
        if asked is not None:
            delay = max(delay, min(asked, LONGEST_RETRY_AFTER))
    return Verdict("retry", now + delay)
