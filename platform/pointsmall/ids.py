"""Object ids: a type prefix and a ULID (time-ordered, so newest-first lists sort by id)."""

import os
import re
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
ULID_PATTERN = "[0-9a-hjkmnp-tv-z]{26}"


def new_ulid() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"


def id_pattern(prefix: str) -> str:
    """The regex an id of this type matches (for request validation)."""
    return f"^{prefix}_{ULID_PATTERN}$"


def is_id(prefix: str, value: str) -> bool:
    return re.fullmatch(id_pattern(prefix), value) is not None
