"""Refuse web requests to every address that is not globally routable unless the host is allow-listed.

    MEMENTO_WEB_ALLOW_HOSTS=127.0.0.1,intranet.example   # comma-separated host names or IPs

``check_url`` resolves the name and checks every address it resolves to, so a public name that
points at 127.0.0.1 is refused too; callers check again on every redirect. (A name that changes
its answer between the check and the connection is not caught: that needs pinning the address.)

An address passes only when ``ipaddress``'s ``is_global`` says so *and* it is not in a range that
Python 3.11 still calls global (``NOT_GLOBAL``); an IPv4 address carried inside an IPv6 one
(IPv4-mapped, 6to4, Teredo, NAT64) must pass as well. So private, loopback, link-local, shared
(100.64.0.0/10, where cloud metadata services live too), documentation, benchmarking and reserved
ranges are all refused, whatever new range a list of named ones would miss.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from mcp.server.mcpserver.exceptions import ToolError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
# Special-purpose ranges (IANA registries) that ``is_global`` of Python 3.11 reports as global.
NOT_GLOBAL = [
    ipaddress.ip_network(n)
    for n in ("192.0.0.0/24", "192.88.99.0/24", "64:ff9b:1::/48", "2001::/23", "2002::/16")
]
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Named kinds first, for a message a user recognises; anything else not global is "non-global".
KINDS = (
    ("loopback", "is_loopback"),
    ("link-local", "is_link_local"),
    ("multicast", "is_multicast"),
    ("unspecified", "is_unspecified"),
    ("private", "is_private"),
    ("reserved", "is_reserved"),
)
SHARED = ipaddress.ip_network("100.64.0.0/10")


def allowed_hosts() -> set[str]:
    raw = os.environ.get("MEMENTO_WEB_ALLOW_HOSTS", "")
    return {h.strip().lower().strip("[]") for h in raw.split(",") if h.strip()}


def _carried(ip: IP) -> list[IP]:
    """The address and any IPv4 address it carries (IPv4-mapped, 6to4, Teredo client, NAT64)."""
    out: list[IP] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        out += [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
        if ip.teredo:
            out.append(ip.teredo[1])
        if ip in NAT64:
            out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def _kind(ip: IP) -> str | None:
    """What kind of non-global address ``ip`` is, or None when it is globally routable."""
    for label, flag in KINDS:
        if getattr(ip, flag):
            return label
    if ip in SHARED:
        return "shared (100.64.0.0/10)"
    if not ip.is_global or any(ip in n for n in NOT_GLOBAL):
        return "non-global"
    return None


def _blocked(address: str) -> str | None:
    """Why an IP address may not be reached, or None when it (and what it carries) is global."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    for candidate in reversed(_carried(ip)):  # the carried IPv4 first: its kind is the telling one
        kind = _kind(candidate)
        if kind:
            return kind
    return None


def check_url(url: str) -> None:
    """ToolError unless ``url`` is http(s) and every address its host resolves to may be reached."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ToolError(f"only http(s) URLs can be fetched, got {url!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise ToolError(f"{url!r} has no host")
    if host in allowed_hosts():
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as e:
        raise ToolError(f"{url}: cannot resolve host {host!r}: {e}") from e
    for info in infos:
        address = str(info[4][0])
        why = _blocked(address)
        if why:
            raise ToolError(
                f"{url}: refused, host {host!r} resolves to {why} address {address} "
                "(allow it with MEMENTO_WEB_ALLOW_HOSTS)"
            )
