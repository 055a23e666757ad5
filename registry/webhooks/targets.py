"""Where a hook may point: http(s) URLs whose host resolves only to public addresses.

Checked when a hook is created and again before every delivery (the delivery then connects
to exactly the address that was checked), so a hook cannot be used to make the registry call
loopback, private, link-local or other internal addresses, not even after a DNS change,
unless a registry admin allowed it for that hook (or ``REGISTRY_WEBHOOK_ALLOW_PRIVATE``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The URL may not be called; the message says why. ``temporary``: DNS did not answer."""

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary


@dataclasses.dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    address: str  # the checked IP address to connect to


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a hook URL, or ``TargetRefused``."""
    if not isinstance(url, str) or not url.strip():
        raise TargetRefused("is required")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(f"is not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("must start with https:// (or http://)")
    if not parts.hostname:
        raise TargetRefused("names no host")
    if parts.username or parts.password:
        raise TargetRefused("must not contain a user name or password (use the signature)")
    if parts.fragment:
        raise TargetRefused("must not contain a #fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def kind_of(address: IPAddress) -> str | None:
    """Why ``address`` is internal ("loopback", "private", ...), or ``None`` if public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # The most specific name first: link-local and 0.0.0.0 are inside "private" ranges too.
    for name in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    return None if address.is_global else "not globally routable"


def resolve(url: str, *, allow_private: bool) -> Target:
    """The target to connect to, checked; raises ``TargetRefused`` naming the address."""
    scheme, host, port, path = parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetRefused(f"host {host!r} does not resolve ({error})", temporary=True) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"host {host!r} has no address", temporary=True)
    if not allow_private:
        for address in addresses:
            kind = kind_of(address)
            if kind is not None:
                raise TargetRefused(
                    f"resolves to {address}, a {kind} address; the registry does not call "
                    "internal services (a registry admin may allow this hook to)"
                )
    return Target(scheme, host, port, path, str(addresses[0]))
