"""Never a way into our own network: a target must resolve to public addresses only, checked
when an endpoint is saved and again for the address each delivery actually connects to (a
name that resolves elsewhere at delivery time, DNS rebinding, gains nothing).

`allow_private` (on-premises deployments, tests) admits loopback and private ranges;
link-local addresses and the cloud metadata services stay refused whatever it says."""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
}


class UnsafeTarget(Exception):
    """The URL or the address it resolves to is not one we deliver to."""


def refusal(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why `ip` is refused, or None when it may be reached."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    # Loopback before reserved: ::1 lies in ::/8, which Python counts as reserved.
    if ip.is_loopback:
        return None if allow_private else "a loopback or private address"
    if ip.is_unspecified or ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return None if allow_private else "a loopback or private address"
    if not ip.is_global:
        return "not a public address"
    return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeTarget(f"{host} does not resolve") from exc
    except UnicodeError as exc:  # the IDNA codec refuses the name (e.g. a C1 control)
        raise UnsafeTarget(f"{host!r} is not a valid host name") from exc
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def check_url(url: str, *, allow_private: bool, require_https: bool) -> None:
    """Refuse a URL whose scheme, credentials or any resolved address we would not deliver to."""
    # A control character (NUL above all) is no part of a URL, and neither the resolver nor
    # the database takes it: refused here, whatever validated the string before.
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise UnsafeTarget("the URL contains a control character")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 literal
        raise UnsafeTarget(f"not a URL: {exc}") from exc
    if parts.scheme not in (("https",) if require_https else ("https", "http")):
        raise UnsafeTarget("the URL must use https" if require_https else "http(s) only")
    if not parts.hostname or parts.username or parts.password:
        raise UnsafeTarget("the URL needs a host and no credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeTarget("bad port") from exc
    for ip in await resolve(parts.hostname, port):
        reason = refusal(ip, allow_private=allow_private)
        if reason:
            raise UnsafeTarget(f"{parts.hostname} resolves to {ip}, {reason}")


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, but every address is judged before a connection may use it: the
    socket is opened to exactly the addresses returned here (and TLS still verifies the
    host name). aiohttp skips resolvers for IP literals: `check_literal` covers those."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve(host, port)
        for ip in addresses:  # one bad address poisons the name: no partial trust
            reason = refusal(ip, allow_private=self.allow_private)
            if reason:
                raise UnsafeTarget(f"{host} resolves to {ip}, {reason}")
        return [
            ResolveResult(
                hostname=host,
                host=str(ip),
                port=port,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in addresses
        ]

    async def close(self) -> None:
        return None


def check_literal(host: str, *, allow_private: bool) -> None:
    """Judge a URL whose host is an IP address (the address connected to is that one)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: the resolver judges it
    reason = refusal(ip, allow_private=allow_private)
    if reason:
        raise UnsafeTarget(f"{ip} is {reason}")
