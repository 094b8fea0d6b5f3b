"""The network policy's address judgement (pure), for every IPv6 form that carries an IPv4 address."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from monitor.netpolicy import NetworkPolicy, embedded_ipv4

DEFAULT = NetworkPolicy()
ALLOW_PRIVATE = NetworkPolicy.from_setting(True)

# (IPv6 form, the IPv4 address it carries)
CARRIERS = [
    ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
    ("::ffff:0:10.0.0.1", "10.0.0.1"),  # IPv4-translated (SIIT)
    ("::127.0.0.1", "127.0.0.1"),  # IPv4-compatible (deprecated)
    ("::10.1.2.3", "10.1.2.3"),
    ("2002:7f00:1::", "127.0.0.1"),  # 6to4
    ("2002:a9fe:a9fe::1", "169.254.169.254"),
    ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 well-known prefix
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("64:ff9b:1::c0a8:101", "192.168.1.1"),  # NAT64 local-use prefix, /96 layout
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo: client is 127.0.0.1 (obfuscated)
]


@pytest.mark.parametrize(("form", "carried"), CARRIERS)
def test_an_ipv6_form_carrying_a_private_ipv4_is_refused(form: str, carried: str) -> None:
    address = ipaddress.ip_address(form)
    assert ipaddress.ip_address(carried) in embedded_ipv4(address)
    assert not DEFAULT.is_allowed(address)


@pytest.mark.parametrize(
    "form",
    ["::ffff:8.8.8.8", "::ffff:0:8.8.8.8", "::8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"],
)
def test_an_ipv6_form_carrying_a_public_ipv4_is_judged_by_it(form: str) -> None:
    assert DEFAULT.is_allowed(ipaddress.ip_address(form))


def test_nat64_local_use_prefix_judges_every_place_the_ipv4_can_sit() -> None:
    # 10.0.0.1 at the /48 layout of RFC 6052 (bits 48-63 and 72-87, the u octet skipped); low 32 bits public.
    address = ipaddress.ip_address("64:ff9b:1:a00:0:100:808:808")
    assert ipaddress.ip_address("10.0.0.1") in embedded_ipv4(address)
    assert not DEFAULT.is_allowed(address)


def test_teredo_with_a_documentation_client_is_refused() -> None:
    # The RFC 4380 example: server 65.54.227.120 (public), client 192.0.2.45 (TEST-NET-1, not global).
    assert not DEFAULT.is_allowed(ipaddress.ip_address("2001:0:4136:e378:8000:63bf:3fff:fdd2"))


def test_site_local_is_refused() -> None:
    # Python counts fec0::/10 as global; it is a deprecated private range.
    assert ipaddress.ip_address("fec0::1").is_global
    assert not DEFAULT.is_allowed(ipaddress.ip_address("fec0::1"))


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254"]
)
def test_link_local_and_metadata_stay_refused_with_allow_private(address: str) -> None:
    assert not ALLOW_PRIVATE.is_allowed(ipaddress.ip_address(address))


def test_metadata_is_allowed_only_when_listed_explicitly() -> None:
    listed = NetworkPolicy.from_setting(["169.254.169.254/32", "fd00:ec2::254/128"])
    assert listed.is_allowed(ipaddress.ip_address("169.254.169.254"))
    assert listed.is_allowed(ipaddress.ip_address("fd00:ec2::254"))
    assert not listed.is_allowed(ipaddress.ip_address("169.254.1.1"))


def test_allow_private_still_allows_private_and_loopback() -> None:
    for address in ("10.0.0.1", "127.0.0.1", "::1", "fd12::1", "::ffff:192.168.0.1"):
        assert ALLOW_PRIVATE.is_allowed(ipaddress.ip_address(address))


def test_a_listed_ipv4_network_allows_its_ipv6_carriers() -> None:
    policy = NetworkPolicy.from_setting(["127.0.0.1/32"])
    assert policy.is_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert policy.is_allowed(ipaddress.ip_address("2002:7f00:1::"))
    assert not policy.is_allowed(ipaddress.ip_address("2002:7f00:2::"))


def test_ordinary_public_ipv6_is_allowed() -> None:
    assert DEFAULT.is_allowed(ipaddress.ip_address("2a00:1450:4001:80b::200e"))
    assert embedded_ipv4(ipaddress.ip_address("2a00:1450:4001:80b::200e")) == ()


def test_teredo_client_decoding_matches_the_rfc() -> None:
    # The client address is stored inverted (RFC 4380 section 4); make sure the test vector above really is
    # 127.0.0.1 and not an accident of the helper.
    packed = socket.inet_pton(socket.AF_INET6, "2001:0:4136:e378:8000:63bf:80ff:fffe")
    client = bytes(b ^ 0xFF for b in packed[12:])
    assert socket.inet_ntoa(client) == "127.0.0.1"


def test_unspecified_and_loopback_ipv6_are_judged_as_themselves() -> None:
    for text in ("::", "::1"):
        address = ipaddress.ip_address(text)
        assert embedded_ipv4(address) == ()
        assert not DEFAULT.is_allowed(address)


def test_a_refusal_names_the_carried_address_and_how_to_allow_it() -> None:
    message = DEFAULT.describe_refusal("x", ipaddress.ip_address("2002:7f00:1::"))
    assert "carrying 127.0.0.1" in message and "allow_private_networks" in message
    metadata = ALLOW_PRIVATE.describe_refusal("x", ipaddress.ip_address("169.254.169.254"))
    assert "metadata" in metadata and "only listing it" in metadata
