"""access.py: the caller's address, the network allow-list, Basic authentication."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from qiwi_gw.access import basic_auth_matches, client_ip, is_allowed
from qiwi_gw.settings import IpNetwork


def networks(*cidrs: str) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


PROXIES = networks("10.0.0.0/8", "fd00::/8")
QIWI = networks("79.142.16.0/20", "91.232.230.0/23", "195.189.100.0/22", "91.213.51.0/24")


# --- client_ip --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        # No proxies configured: the header is never believed.
        ("203.0.113.9", "79.142.16.1", (), "203.0.113.9"),
        # An untrusted peer cannot choose its address by sending the header.
        ("203.0.113.9", "79.142.16.1", PROXIES, "203.0.113.9"),
        ("203.0.113.9", "10.0.0.1", PROXIES, "203.0.113.9"),
        # No header: the peer.
        ("10.0.0.1", None, PROXIES, "10.0.0.1"),
        ("203.0.113.9", None, (), "203.0.113.9"),
        # No peer at all.
        (None, "79.142.16.1", PROXIES, None),
        (None, None, (), None),
    ],
)
def test_header_ignored_unless_peer_is_trusted(
    peer: str | None,
    forwarded_for: str | None,
    trusted: tuple[IpNetwork, ...],
    expected: str | None,
) -> None:
    assert client_ip(peer, forwarded_for, trusted) == expected


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        # One hop added by the trusted proxy.
        ("79.142.16.1", "79.142.16.1"),
        (" 79.142.16.1 ", "79.142.16.1"),
        # Two trusted proxies in a row: skip both, the client is the first untrusted hop.
        ("79.142.16.1, 10.0.0.7", "79.142.16.1"),
        ("79.142.16.1,10.0.0.7,10.0.0.8", "79.142.16.1"),
        # A spoofer writes QIWI's address on the left; the proxy appends the real one.
        ("79.142.16.1, 203.0.113.9", "203.0.113.9"),
        ("79.142.16.1, 91.232.230.5, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
        # IPv6 hops.
        ("2001:db8::1, fd00::2", "2001:db8::1"),
    ],
)
def test_rightmost_untrusted_hop_from_a_trusted_proxy(forwarded_for: str, expected: str) -> None:
    assert client_ip("10.0.0.1", forwarded_for, PROXIES) == expected


def test_ipv4_mapped_peer_counts_as_trusted() -> None:
    assert client_ip("::ffff:10.0.0.1", "79.142.16.1", PROXIES) == "79.142.16.1"


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        # The rightmost hop is garbage: nothing in the header can be believed.
        ("79.142.16.1, garbage", "10.0.0.1"),
        ("79.142.16.1, 79.142.16.1:443", "10.0.0.1"),
        ("", "10.0.0.1"),
        (",", "10.0.0.1"),
        ("unknown", "10.0.0.1"),
        # Garbage left of a trusted hop: stop at the last address known good.
        ("79.142.16.1, garbage, 10.0.0.7", "10.0.0.7"),
        ("<script>, 10.0.0.7", "10.0.0.7"),
    ],
)
def test_garbage_hops_are_not_believed(forwarded_for: str, expected: str) -> None:
    result = client_ip("10.0.0.1", forwarded_for, PROXIES)
    assert result == expected
    assert result is not None
    ipaddress.ip_address(result)


def test_all_hops_trusted_gives_the_leftmost() -> None:
    assert client_ip("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXIES) == "10.0.0.3"


# --- is_allowed -----------------------------------------------------------------------


@pytest.mark.parametrize("ip", ["79.142.16.1", "203.0.113.9", "::1", "not an ip", None])
def test_empty_list_allows_everyone(ip: str | None) -> None:
    assert is_allowed(ip, ())


@pytest.mark.parametrize(
    "ip",
    ["79.142.16.0", "79.142.31.255", "91.232.231.200", "195.189.103.1", "91.213.51.77"],
)
def test_inside_the_list(ip: str) -> None:
    assert is_allowed(ip, QIWI)


@pytest.mark.parametrize(
    "ip",
    ["79.142.32.0", "79.142.15.255", "91.232.232.1", "91.213.52.1", "8.8.8.8", "::1"],
)
def test_outside_the_list(ip: str) -> None:
    assert not is_allowed(ip, QIWI)


@pytest.mark.parametrize("ip", [None, "", "garbage", "79.142.16.1.5", "79.142.16.1/32"])
def test_unknown_or_garbage_address_is_refused(ip: str | None) -> None:
    assert not is_allowed(ip, QIWI)


@pytest.mark.parametrize(
    ("ip", "allowed"), [("::ffff:79.142.16.1", True), ("::ffff:8.8.8.8", False)]
)
def test_ipv4_mapped_ipv6(ip: str, allowed: bool) -> None:
    assert is_allowed(ip, QIWI) is allowed


def test_ipv6_network() -> None:
    allowed = networks("2001:db8::/32")
    assert is_allowed("2001:db8::5", allowed)
    assert not is_allowed("2001:db9::5", allowed)
    assert not is_allowed("79.142.16.1", allowed)


# --- basic_auth_matches -------------------------------------------------------------------


def basic(credentials: str, scheme: str = "Basic") -> str:
    return f"{scheme} {base64.b64encode(credentials.encode()).decode()}"


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (basic("qiwi:s3cret"), True),
        (basic("qiwi:s3cret", scheme="basic"), True),
        (basic("qiwi:s3cret", scheme="BASIC"), True),
        ("  " + basic("qiwi:s3cret") + "  ", True),
        (basic("QIWI:s3cret"), False),
        (basic("other:s3cret"), False),
        (basic("qiwi:wrong"), False),
        (basic("qiwi:s3cret "), False),
        (basic("qiwi:"), False),
        (basic(":s3cret"), False),
        (basic("qiwis3cret"), False),
        (basic(""), False),
        (None, False),
        ("", False),
        ("Basic", False),
        ("Basic ", False),
        ("Basic !!!not-base64!!!", False),
        ("Basic cWl3aTpzM2NyZXQ", False),  # qiwi:s3cret without its padding
        ("Bearer " + base64.b64encode(b"qiwi:s3cret").decode(), False),
        (basic("qiwi:s3cret", scheme="Digest"), False),
        ("qiwi:s3cret", False),
    ],
)
def test_basic_auth(header: str | None, matches: bool) -> None:
    assert basic_auth_matches(header, "qiwi", "s3cret") is matches


def test_password_containing_colons() -> None:
    header = basic("qiwi:a:b:c")
    assert basic_auth_matches(header, "qiwi", "a:b:c")
    assert not basic_auth_matches(header, "qiwi", "a")
    assert not basic_auth_matches(header, "qiwi:a", "b:c")


def test_non_ascii_credentials_as_utf8() -> None:
    header = basic("касса:пароль")
    assert basic_auth_matches(header, "касса", "пароль")
    assert not basic_auth_matches(header, "касса", "другой")
