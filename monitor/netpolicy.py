"""Which addresses outgoing requests (feeds, webhooks) may reach.

By default only public addresses: a feed or webhook URL whose host is, or resolves to, a loopback, private,
link-local, multicast, reserved or unspecified address is refused, so a rule file or feed list edited by one
user cannot make the daemon probe the machine's own network (SSRF). `allow_private_networks: true` lifts the
restriction; a list of CIDR networks lifts it for those networks only (tests use ["127.0.0.1/32"]).

Every resolved address must be allowed, not just the first: a host with one public and one private A record
is refused. The check runs before each request; redirects are checked hop by hop by the caller.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitor.errors import NetworkPolicyError

__all__ = ["NetworkPolicy"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    allow_all_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_schemes: tuple[str, ...] = ("http", "https")

    @classmethod
    def from_setting(cls, setting: bool | Iterable[str]) -> NetworkPolicy:
        """Build from the config value: a bool, or a list of CIDR strings ("127.0.0.1/32", "10.0.0.0/8")."""
        if isinstance(setting, bool):
            return cls(allow_all_private=setting)
        return cls(allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in setting))

    def is_allowed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if self.allow_all_private:
            return True
        if any(address in network for network in self.allowed_networks):
            return True
        return address.is_global and not address.is_multicast

    def check_scheme(self, url: str) -> tuple[str, int]:
        """Validate the URL's scheme and host; return (host, port)."""
        parts = urlsplit(url)
        if parts.scheme not in self.allowed_schemes:
            raise NetworkPolicyError(url, f"scheme {parts.scheme!r} is not allowed (use http or https)")
        if not parts.hostname:
            raise NetworkPolicyError(url, "URL has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise NetworkPolicyError(url, f"invalid port: {exc}") from exc
        return parts.hostname, port

    async def check_url(self, url: str) -> None:
        """Resolve the URL's host and refuse it unless every address it resolves to is allowed."""
        host, port = self.check_scheme(url)
        for address in await resolve(url, host, port):
            if not self.is_allowed(address):
                raise NetworkPolicyError(
                    url,
                    f"host {host!r} resolves to {address}, a non-public address; "
                    "set allow_private_networks in the configuration to allow it",
                )


async def resolve(url: str, host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # Not a policy matter: the caller treats it as a (retryable) fetch/delivery failure.
        raise OSError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]
        addresses.append(ipaddress.ip_address(text))
    return addresses
