"""Who is on the other end of a request or a socket, behind the proxies we trust.

Daphne's --proxy-headers takes the leftmost X-Forwarded-For address, which the client writes
itself; per-address limits use this instead (TRUSTED_PROXIES, docs/security.md).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest


@lru_cache(maxsize=8)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str) -> bool:
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(*, peer: str, forwarded_for: str = "") -> str:
    """Who is on the other end: PEER, unless PEER is a trusted proxy; then the rightmost
    X-Forwarded-For address that is not a trusted proxy (the ones left of it are the client's
    own claims, which anyone can forge)."""
    if not peer or not _trusted(peer):
        return peer or "unknown"
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if not _trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a forged or garbled header: count the proxy
    return peer


def scope_address(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("", 0)
    headers = dict(scope.get("headers", []))
    forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
    return client_address(peer=str(client[0] or ""), forwarded_for=forwarded)


def request_address(request: HttpRequest) -> str:
    return client_address(
        peer=str(request.META.get("REMOTE_ADDR") or ""),
        forwarded_for=str(request.META.get("HTTP_X_FORWARDED_FOR") or ""),
    )
