"""Who is calling: the client's address, the network allow-list and Basic auth."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from qiwi_gw.settings import IpNetwork


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[IpNetwork, ...]
) -> str | None:
    """The caller's address, believing ``X-Forwarded-For`` only from trusted proxies.

    Walks the header from the right, skipping trusted hops: the first untrusted
    address is the one a spoofer cannot choose.
    """
    if peer is None or forwarded_for is None or not is_in(peer, trusted_proxies):
        return peer
    address = peer
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        if not _parse(hop):
            return address
        address = hop
        if not is_in(hop, trusted_proxies):
            return hop
    return address


def is_allowed(ip: str | None, networks: tuple[IpNetwork, ...]) -> bool:
    """True when no allow-list is set, or the address is inside it."""
    if not networks:
        return True
    return ip is not None and is_in(ip, networks)


def basic_auth_matches(header: str | None, username: str, password: str) -> bool:
    """Compare in constant time: both halves are always compared, as bytes."""
    given_user, given_password = _decode_basic(header)
    user_ok = hmac.compare_digest(given_user, username.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    return user_ok & password_ok


def _decode_basic(header: str | None) -> tuple[bytes, bytes]:
    if header is None:
        return b"", b""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return b"", b""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b"", b""
    user, separator, password = decoded.partition(b":")
    if not separator:
        return b"", b""
    return user, password


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def is_in(address: str, networks: tuple[IpNetwork, ...]) -> bool:
    parsed = _parse(address)
    if parsed is None:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed in network for network in networks)
