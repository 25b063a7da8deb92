"""The key ring that encrypts webhook secrets at rest."""

import os
from functools import cache

from pointsmall.settings import Settings
from pointsmall_webhooks.secretbox import SecretBox, new_key_setting


@cache
def secret_box(settings: Settings) -> SecretBox:
    """From `WEBHOOK_SECRET_KEYS`; without it, from a key file under the data directory,
    made (mode 0600) on first use: enough for one host, not for a fleet."""
    if settings.webhook_secret_keys:
        return SecretBox.from_setting(settings.webhook_secret_keys)
    path = settings.data_dir / "webhook-secret-keys"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_key_setting())
    return SecretBox.from_setting(path.read_text().strip())
