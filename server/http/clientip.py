"""Who the client is: the socket peer, or, when that peer is a proxy the operator trusts
(`STREAMFLIX_TRUSTED_PROXIES`: addresses and CIDR blocks), the address that proxy saw.

Behind a load balancer or CDN every request comes from the proxy's address, so per-IP rate
limits would put every viewer in one bucket. `X-Forwarded-For` is read right to left (each
proxy appends the address it received from): the first address that is not a trusted proxy
is the client. Without trusted proxies, or from a peer that is not one, the header is
ignored: anyone can send it, and believing it would let a client pick its own bucket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

from server import keys
from server.settings import Network


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Iterable[Network]) -> bool:
    return any(address in net for net in nets)


def is_trusted(peer: str, trusted: tuple[Network, ...]) -> bool:
    """Whether `peer` (an address as text) is one of the trusted proxies."""
    if not trusted:
        return False
    try:
        return _trusted(ipaddress.ip_address(peer), trusted)
    except ValueError:
        return False


def resolve(peer: str, forwarded_for: Iterable[str], trusted: tuple[Network, ...]) -> str:
    """The client address for a request from `peer` carrying these X-Forwarded-For values."""
    try:
        client = ipaddress.ip_address(peer)
    except ValueError:
        return peer  # not IP (a unix socket): nothing to walk
    if not trusted or not _trusted(client, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage: the last address a trusted proxy vouched for stands
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)


def client_ip(request: web.Request) -> str:
    peer = request.remote or ""
    settings = request.app.get(keys.SETTINGS)
    trusted = settings.trusted_networks if settings is not None else ()
    if not trusted:
        return peer or "unknown"
    return resolve(peer, request.headers.getall("X-Forwarded-For", ()), trusted) or "unknown"
