"""The key ring that seals secrets at rest: webhook secrets, and stored answers that the
idempotency store replays (an API key or a webhook secret shown once must not sit there in
plain text)."""

import os
from functools import cache

from pointsmall.settings import Settings
from pointsmall_webhooks.secretbox import SecretBox, new_key_setting


class MissingKeys(RuntimeError):
    """Production without `WEBHOOK_SECRET_KEYS`."""


def require_keys(settings: Settings) -> None:
    """Refuse to start in production without configured keys: a key file made silently
    beside the data would be lost with the host, and with it every sealed secret."""
    if settings.environment == "production" and not settings.webhook_secret_keys:
        raise MissingKeys(
            "WEBHOOK_SECRET_KEYS must be set in production: 'id:base64(32 bytes)[,id:key…]' "
            '(make one with: python -c "import base64, os; '
            "print('k1:' + base64.b64encode(os.urandom(32)).decode())\")"
        )


@cache
def secret_box(settings: Settings) -> SecretBox:
    """From `WEBHOOK_SECRET_KEYS`; outside production without it, from a key file under the
    data directory, made (mode 0600) on first use: enough for one host, not for a fleet."""
    require_keys(settings)
    if settings.webhook_secret_keys:
        return SecretBox.from_setting(settings.webhook_secret_keys)
    path = settings.data_dir / "webhook-secret-keys"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_key_setting())
    return SecretBox.from_setting(path.read_text().strip())
