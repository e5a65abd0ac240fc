"""The private-network guard: which addresses an HTTP origin fetch may reach."""

from __future__ import annotations

import pytest

from appliance.origin.addresses import is_forbidden


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",  # EC2 instance metadata
        "169.254.0.1",
        "100.64.0.1",  # shared address space (carrier-grade NAT)
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:db8::1",  # documentation
        "fd00:ec2::254",  # EC2 metadata over IPv6
        "localhost",
        "not an address",
    ],
)
def test_private_and_special_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden(address)


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "52.216.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "2a00::1"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden(address)
