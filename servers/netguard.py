"""Refuse web requests to private, loopback and link-local addresses unless the host is allow-listed.

    MEMENTO_WEB_ALLOW_HOSTS=127.0.0.1,intranet.example   # comma-separated host names or IPs

``check_url`` resolves the name and checks every address it resolves to, so a public name that
points at 127.0.0.1 is refused too; callers check again on every redirect. (A name that changes
its answer between the check and the connection is not caught: that needs pinning the address.)
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from mcp.server.mcpserver.exceptions import ToolError


def allowed_hosts() -> set[str]:
    raw = os.environ.get("MEMENTO_WEB_ALLOW_HOSTS", "")
    return {h.strip().lower().strip("[]") for h in raw.split(",") if h.strip()}


def _blocked(address: str) -> str | None:
    """Why an IP address may not be reached, or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for label, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return label
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
