"""An aiohttp client session for user-given URLs (webhooks, sources to download): its resolver refuses every host that
resolves to a non-public address (unless allowed), at connection time, so a name that changes
its answer after it was checked (DNS rebinding) is refused too; a URL whose host is an IP
address (which no resolver sees) is checked when the request starts. No redirects are followed (a
redirect to http://169.254.169.254/ would walk around the check)."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from media.errors import OutboundRefused
from media.outbound import check_url, is_public, public_addresses


class GuardedResolver(AbstractResolver):
    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        # OutboundRefused propagates as the request's error: the caller records its message
        addresses = await public_addresses(host, port, allow_private=self.allow_private)
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        return None


def _literal_guard(allow_private: bool) -> aiohttp.TraceConfig:
    """A URL whose host is an IP address never reaches the resolver: checked here instead."""

    async def on_request_start(_session: Any, _ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        host, _port = check_url(str(params.url))
        try:
            public = is_public(host)
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        if not public and not allow_private:
            raise OutboundRefused(
                f"{host} is not a public address (set STREAMFLIX_OUTBOUND_ALLOW_PRIVATE to allow private addresses)"
            )

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace


def guarded_session(
    *, allow_private: bool, timeout_s: float | aiohttp.ClientTimeout, **kwargs: Any
) -> aiohttp.ClientSession:
    """`timeout_s`: a whole request's bound, or aiohttp's finer timeout."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=allow_private), use_dns_cache=False)
    timeout = timeout_s if isinstance(timeout_s, aiohttp.ClientTimeout) else aiohttp.ClientTimeout(total=timeout_s)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        trace_configs=[_literal_guard(allow_private)],
        **kwargs,
    )
