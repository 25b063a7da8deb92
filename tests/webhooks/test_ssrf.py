"""No way into our network: refused at creation (422 unsafe_url) and at delivery, against
the address actually connected to."""

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from pointsmall.settings import Settings
from pointsmall.webhooks.keys import secret_box
from pointsmall.webhooks.relay import relay_schema
from pointsmall_webhooks.delivery import deliver
from pointsmall_webhooks.sender import Sender
from pointsmall_webhooks.ssrf import UnsafeTarget, check_url, refusal
from tests.conftest import TenantClient, serving
from tests.webhooks.receiver import receiving

Tenants = tuple[TenantClient, TenantClient]
REFUSED = [
    "http://127.0.0.1/hook",
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://localhost/hook",  # a name that resolves to loopback
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
]


@pytest.mark.parametrize(
    ("address", "private_ok", "refused"),
    [
        ("127.0.0.1", False, True),
        ("127.0.0.1", True, False),
        ("10.0.0.1", True, False),
        ("169.254.169.254", True, True),
        ("169.254.1.1", True, True),
        ("fe80::1", True, True),
        ("fd00:ec2::254", True, True),
        ("100.100.100.200", True, True),
        ("::1", False, True),
        ("::1", True, False),  # loopback is loopback, IPv6 too
        ("240.0.0.1", True, True),  # reserved, though Python also counts it private
        ("::ffff:10.0.0.1", False, True),
        ("93.184.216.34", False, False),
        ("2606:4700::1111", False, False),
    ],
)
def test_which_addresses_are_refused(address: str, private_ok: bool, refused: bool) -> None:
    reason = refusal(ipaddress.ip_address(address), allow_private=private_ok)
    assert (reason is not None) == refused, reason


async def test_creation_refuses_unsafe_urls(settings: Settings) -> None:
    strict = replace(settings, webhook_allow_private=False, environment="production")
    async with serving(strict) as url, httpx.AsyncClient(base_url=url) as http:
        signup = await http.post(
            "/signup",
            json={
                "merchant_name": "Strict",
                "admin_email": "a@strict.example",
                "password": "p" * 12,
            },
        )
        http.headers["Authorization"] = f"Bearer {signup.json()['api_key']}"
        for target in REFUSED + [u.replace("http://", "https://") for u in REFUSED[:2]]:
            response = await http.post("/v1/webhook-endpoints", json={"url": target})
            assert response.status_code == 422, target
            assert response.json()["code"] == "unsafe_url", target
        plain = await http.post("/v1/webhook-endpoints", json={"url": "http://example.com/h"})
        assert plain.status_code == 422 and "https" in plain.json()["detail"]
    # Even where private targets are allowed, link-local and metadata addresses are not.
    for target in ("http://169.254.169.254/", "http://[fe80::1]/"):
        with pytest.raises(UnsafeTarget):
            await check_url(target, allow_private=True, require_https=False)


async def test_delivery_checks_the_address_it_connects_to(
    tenants: Tenants, settings: Settings, hot_pool: asyncpg.Pool
) -> None:
    a, _ = tenants
    async with receiving() as receiver:
        for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
            created = await a.http.post(
                "/v1/webhook-endpoints", json={"url": url, "event_types": ["points.*"]}
            )
            assert created.status_code == 201, created.text
        member = (await a.http.post("/v1/members", json={"external_id": "ssrf"})).json()["id"]
        await a.http.post(
            "/v1/points/earn", json={"member_id": member, "points": 5, "reason": "ssrf"}
        )
        async with hot_pool.acquire() as conn:
            pairs = (await relay_schema(conn, a.schema, a.id)).pairs
        assert len(pairs) == 2
        # The deployment stops allowing private targets: both deliveries are refused at connect.
        guarded = Sender(allow_private=False)
        for message_id, endpoint_id in pairs:
            done = await deliver(
                hot_pool,
                guarded,
                secret_box(settings),
                a.schema,
                message_id,
                endpoint_id,
                now=datetime.now(UTC),
            )
            assert done is not None and done.status is None
        assert receiver.received == []
        log = (await a.http.get(f"/v1/webhook-messages/{pairs[0][0]}")).json()
        assert {x["error"].split(":")[0] for x in log["attempts"]} == {"unsafe target"}
        # A direct send to the metadata address never leaves the machine, whatever the setting.
        lenient = Sender(allow_private=True)
        response = await lenient.post("http://169.254.169.254/latest/meta-data/", {}, b"{}")
        assert response.status is None and (response.error or "").startswith("unsafe target")
        await guarded.aclose()
        await lenient.aclose()


@pytest.mark.parametrize("target", REFUSED[:5])
async def test_each_refused_url_is_refused_at_delivery_too(target: str) -> None:
    sender = Sender(allow_private=False)
    try:
        response = await sender.post(target, {"webhook-id": "msg_x"}, b"{}")
    finally:
        await sender.aclose()
    assert response.status is None
    assert (response.error or "").startswith("unsafe target"), response.error


@pytest.mark.parametrize("url", ["http://a\u008db.example/", "http://[::1/", "http://[x]/"])
async def test_urls_the_parser_or_the_idna_codec_refuse_are_422(
    tenants: tuple[TenantClient, TenantClient], url: str
) -> None:
    a, _ = tenants
    response = await a.http.post("/v1/webhook-endpoints", json={"url": url})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "unsafe_url"
