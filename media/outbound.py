"""Which URLs the server may call on a user's behalf (webhooks, ingest from a URL): the
guard against server-side request forgery.

A URL given by a user must not make the server reach what only the server can reach: its own
loopback, the private network behind it, a cloud's metadata service (169.254.169.254). So
every address a host resolves to must be public (`ipaddress`'s `is_global`, IPv4-mapped IPv6
unwrapped), unless the operator allows private addresses (`STREAMFLIX_OUTBOUND_ALLOW_PRIVATE`,
for an on-premises receiver or tests). The check is made when the URL is registered AND on
every connection (`public_addresses`, used by the HTTP client's resolver), so a name that
resolves differently later (DNS rebinding) is still refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from media.errors import OutboundRefused

SCHEMES = ("http", "https")
MAX_URL_CHARS = 2000


def is_public(address: str) -> bool:
    """True for a globally routable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL; OutboundRefused for anything else."""
    if len(url) > MAX_URL_CHARS:
        raise OutboundRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise OutboundRefused("only http:// and https:// URLs can be called")
    if not parts.hostname:
        raise OutboundRefused("the URL has no host")
    if parts.username or parts.password:
        raise OutboundRefused("credentials in the URL are not allowed")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def public_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses `host` resolves to; OutboundRefused when it does not resolve, or when one
    of them is not public and private addresses are not allowed (all of them are refused:
    a name that mixes public and private answers is an attack or a mistake)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise OutboundRefused(f"{host} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OutboundRefused(f"{host} does not resolve")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise OutboundRefused(
                    f"{host} resolves to {address}, which is not a public address "
                    "(set STREAMFLIX_OUTBOUND_ALLOW_PRIVATE to allow private addresses)"
                )
    return addresses


async def check_target(url: str, *, allow_private: bool) -> None:
    """The whole check of a URL a user gives: form, then every address its host resolves to."""
    host, port = check_url(url)
    await public_addresses(host, port, allow_private=allow_private)
