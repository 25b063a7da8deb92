"""Secrets at rest: AES-GCM under a key chosen by id, stored as `<key id>:<base64 nonce +
ciphertext>`. New secrets use the current key; older key ids still decrypt, so keys rotate
by adding one and making it current. The associated data binds a ciphertext to its row."""

import base64
import os
from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SecretBox:
    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"the current key id {current!r} has no key")
        for key_id, key in keys.items():
            if ":" in key_id or len(key) != 32:
                raise ValueError(f"key {key_id!r}: ids have no ':' and keys are 32 bytes")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current

    @classmethod
    def from_setting(cls, value: str) -> "SecretBox":
        """`id1:base64key,id2:base64key`: the first is current."""
        pairs = [item.split(":", 1) for item in value.split(",") if item.strip()]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError("expected 'key_id:base64key[,key_id:base64key...]'")
        return cls({k.strip(): base64.b64decode(v) for k, v in pairs}, pairs[0][0].strip())

    def encrypt(self, plaintext: str, bound_to: str) -> str:
        return self.seal(plaintext.encode(), bound_to).decode()

    def decrypt(self, stored: str, bound_to: str) -> str:
        return self.open(stored.encode(), bound_to).decode()

    def seal(self, plaintext: bytes, bound_to: str) -> bytes:
        """`<key id>:<base64 nonce + ciphertext>` as bytes."""
        nonce = os.urandom(12)
        sealed = self._keys[self.current].encrypt(nonce, plaintext, bound_to.encode())
        return self.current.encode() + b":" + base64.b64encode(nonce + sealed)

    def open(self, stored: bytes, bound_to: str) -> bytes:
        key_id, _, blob = stored.partition(b":")
        raw = base64.b64decode(blob)
        return self._keys[key_id.decode()].decrypt(raw[:12], raw[12:], bound_to.encode())


def new_key_setting(key_id: str = "k1") -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"
