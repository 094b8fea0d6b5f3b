"""Which addresses outgoing requests (feeds, webhooks) may reach.

By default only public addresses: a feed or webhook URL whose host is, or resolves to, a loopback, private,
link-local, multicast, reserved or unspecified address is refused, so a rule file or feed list edited by one
user cannot make the daemon probe the machine's own network (SSRF). `allow_private_networks: true` lifts the
restriction; a list of CIDR networks lifts it for those networks only (tests use ["127.0.0.1/32"]).

Every resolved address must be allowed, not just the first: a host with one public and one private A record
is refused. The check runs before each request; redirects are checked hop by hop by the caller.

An IPv6 address that carries an IPv4 address is judged by that IPv4 address, because that is where the packets
end up: IPv4-mapped (::ffff:a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), 6to4
(2002::/16), NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48) and Teredo (2001::/32: both the server and
the client address). Without this, [::ffff:127.0.0.1], [2002:7f00:1::] or [64:ff9b::a9fe:a9fe] would pass as
"public" IPv6 addresses. Deprecated site-local fec0::/10, which Python counts as global, is refused too.

Link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254 and the few other metadata
endpoints in ALWAYS_REFUSED) stay refused even with `allow_private_networks: true`: reaching a metadata
service hands out the machine's cloud credentials, and no feed or webhook lives there. Listing such a network
explicitly (`allow_private_networks: ["169.254.169.254/32"]`) is the only way to allow it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitor.errors import NetworkPolicyError

__all__ = ["ALWAYS_REFUSED", "NetworkPolicy", "embedded_ipv4"]

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
        if any(address in network for network in self.allowed_networks):
            return True  # listed explicitly: the operator's word wins, metadata addresses included
        carried = embedded_ipv4(address)
        if carried:
            return all(self.is_allowed(inner) for inner in carried)
        if any(address in network for network in ALWAYS_REFUSED):
            return False
        if self.allow_all_private:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
            return False
        return address.is_global and not address.is_multicast

    def describe_refusal(self, host: str, address: IPAddress) -> str:
        """Why `address` (of `host`) is refused, naming an IPv4 address it carries and how to allow it."""
        carried = embedded_ipv4(address)
        shown = f"{address} (carrying {', '.join(map(str, carried))})" if carried else str(address)
        judged = carried or (address,)
        if any(inner in network for inner in judged for network in ALWAYS_REFUSED):
            return (
                f"host {host!r} resolves to {shown}, a non-public address (link-local or cloud metadata); "
                "only listing it in allow_private_networks allows it"
            )
        return (
            f"host {host!r} resolves to {shown}, a non-public address; "
            "set allow_private_networks in the configuration to allow it"
        )

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

    def refusal_without_dns(self, url: str) -> str | None:
        """Why the policy would refuse `url`, judged without any DNS lookup (for `monitor check`, which must
        work offline): its scheme, a literal address, or a name that is loopback by definition (localhost,
        *.localhost, RFC 6761). None when nothing is refused this way; other names are judged when resolved."""
        try:
            host, _port = self.check_scheme(url)
        except NetworkPolicyError as exc:
            return exc.message
        name = host.strip("[]").rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):
            candidates = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
        else:
            try:
                candidates = [ipaddress.ip_address(name.split("%", 1)[0])]
            except ValueError:
                return None
        for address in candidates:
            if not self.is_allowed(address):
                return self.describe_refusal(host, address)
        return None

    async def check_url(self, url: str) -> None:
        """Resolve the URL's host and refuse it unless every address it resolves to is allowed."""
        host, port = self.check_scheme(url)
        for address in await resolve(url, host, port):
            if not self.is_allowed(address):
                raise NetworkPolicyError(url, self.describe_refusal(host, address))


# Refused even with allow_private_networks: true (see the module docstring); allowed only when listed.
ALWAYS_REFUSED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(network)
    for network in (
        "169.254.0.0/16",  # IPv4 link-local; 169.254.169.254 is the AWS, GCP, Azure and OpenStack metadata service
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # the AWS metadata service over IPv6
        "100.100.100.200/32",  # the Alibaba Cloud metadata service
        "192.0.0.192/32",  # the Oracle Cloud metadata service
    )
)

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (see the module docstring); () for any other address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return ()
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address in _IPV4_COMPATIBLE and int(address) <= 1:
        return ()  # :: and ::1 are the IPv6 unspecified and loopback addresses, judged as such
    if address in _IPV4_TRANSLATED or address in _NAT64_WELL_KNOWN or address in _IPV4_COMPATIBLE:
        return (low32,)
    if address in _NAT64_LOCAL:
        # RFC 6052 puts the IPv4 address after the operator's prefix, whose length we cannot know: judge every
        # place a 64:ff9b:1::/48 prefix can put it (/48, /56, /64, /96; the u octet, bits 64-71, is skipped).
        value = int(address)
        after_48 = ((value >> 64) & 0xFFFF) << 16 | ((value >> 40) & 0xFFFF)
        after_56 = ((value >> 64) & 0xFF) << 24 | ((value >> 32) & 0xFFFFFF)
        after_64 = (value >> 24) & 0xFFFFFFFF
        return tuple(
            dict.fromkeys(ipaddress.IPv4Address(v) for v in (after_48, after_56, after_64, int(low32)))
        )
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        server, client = address.teredo
        return (server, client)
    return ()


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
