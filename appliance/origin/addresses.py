"""The private-network guard of the HTTP origin: which addresses may be connected to, and an
aiohttp resolver that enforces it on the very addresses the connector then connects to, so a
name that answers differently on a second lookup (DNS rebinding) cannot slip through."""

from __future__ import annotations

import ipaddress
import logging
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

from appliance.origin.base import KeyRejected

log = logging.getLogger(__name__)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: embeds an IPv4 address


def is_forbidden(address: str) -> bool:
    """True for an address that an origin fetch must not reach unless ``allow_private``:
    loopback, private (RFC 1918, fc00::/7), shared (100.64.0.0/10), link-local (169.254.0.0/16
    with the EC2 metadata address, fe80::/10), unspecified, multicast, reserved, documentation,
    anything else that is not globally routable, and IPv6 forms that embed such an IPv4 address
    (mapped, 6to4, NAT64). Anything that does not parse is forbidden."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 address itself
            return is_forbidden(str(ip.ipv4_mapped))
        if ip in _NAT64:
            return is_forbidden(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if ip.sixtofour is not None and is_forbidden(str(ip.sixtofour)):
            return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_address(address: str, *, host: str) -> None:
    """Raises KeyRejected when ``address`` (what ``host`` resolved to) is forbidden."""
    if is_forbidden(address):
        log.warning("origin.rejected origin=http host=%s address=%s reason=private", host, address)
        raise KeyRejected("origin address not allowed")


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner``, then refuses the whole answer if any address is forbidden
    (a mixed answer is itself suspicious). With ``allow_private`` it only passes through."""

    def __init__(
        self, inner: AbstractResolver, *, allow_private: bool, owns_inner: bool = True
    ) -> None:
        self._inner = inner
        self._allow_private = allow_private
        self._owns_inner = owns_inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                check_address(result["host"], host=host)
        return results

    async def close(self) -> None:
        if self._owns_inner:
            await self._inner.close()
