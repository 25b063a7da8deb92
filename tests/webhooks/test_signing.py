"""Signatures any Standard Webhooks library accepts; secrets sealed at rest."""

import base64
import os
import time

import pytest
from cryptography.exceptions import InvalidTag
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pointsmall_webhooks.secretbox import SecretBox, new_key_setting
from pointsmall_webhooks.signing import InvalidSignature, generate_secret, sign_headers, verify

BODY = b'{"id":"evt_1","type":"points.earned","data":{"points":100}}'


def test_the_reference_library_accepts_our_signature_and_rejects_one_changed_byte() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 44
    headers = sign_headers([secret], "msg_1", int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers)["type"] == "points.earned"
    tampered = BODY.replace(b"100", b"900")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_during_rotation_both_secrets_verify() -> None:
    old, new = generate_secret(), generate_secret()
    headers = sign_headers([new, old], "msg_2", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)
        verify(secret, headers, BODY)


def test_our_verifier_keeps_the_five_minute_tolerance() -> None:
    secret = generate_secret()
    now = time.time()
    headers = sign_headers([secret], "msg_3", int(now) - 301, BODY)
    with pytest.raises(InvalidSignature):
        verify(secret, headers, BODY, now=now)
    verify(secret, headers, BODY, now=now - 2)
    with pytest.raises(InvalidSignature):
        verify(secret, headers, BODY + b" ", now=now - 2)


def test_secret_box_rotates_keys_and_binds_rows() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    first = SecretBox({"k1": k1}, "k1")
    sealed = first.encrypt("whsec_abc", "wh_1")
    assert sealed.startswith("k1:") and "whsec_abc" not in sealed
    both = SecretBox.from_setting(
        f"k2:{base64.b64encode(k2).decode()},k1:{base64.b64encode(k1).decode()}"
    )
    assert both.current == "k2" and both.decrypt(sealed, "wh_1") == "whsec_abc"
    assert both.encrypt("x", "wh_1").startswith("k2:")
    with pytest.raises(InvalidTag):
        first.decrypt(sealed, "wh_2")  # moved to another row: refused
    with pytest.raises(ValueError):
        SecretBox.from_setting(new_key_setting("k3")[:20])
