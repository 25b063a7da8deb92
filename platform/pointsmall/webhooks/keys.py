"""The key ring that encrypts webhook secrets at rest (see `pointsmall.keyring`)."""

from pointsmall.keyring import secret_box

__all__ = ["secret_box"]
