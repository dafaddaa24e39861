"""The HTTP client deliveries are POSTed with: it connects only to addresses it checked.

Every connection goes to an address resolved and checked just before (never to a name, so DNS
rebinding between the check and the connect is not possible): public addresses only, unless
WEBHOOKS_ALLOW_PRIVATE_TARGETS (development, tests) lets loopback and private ones through;
link-local (the cloud metadata service), multicast and reserved addresses never. The checks are
knowledge.fetch's, which syncs use for pages.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.utils.translation import gettext as _

from knowledge.fetch import address_refusal, checked_client


class TargetRefused(Exception):
    """The target URL is not one a delivery may go to; the message says why (for the log)."""


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def target_addresses(host: str, port: int) -> list[str]:
    """HOST's addresses, all checked; TargetRefused when one of them may not be reached."""
    name = _normal_host(host)
    try:
        addresses = [str(ipaddress.ip_address(name.split("%", 1)[0]))]
    except ValueError:
        try:
            addresses = _resolve(name, port)
        except (OSError, UnicodeError) as exc:
            raise TargetRefused(
                _("The host %(host)s could not be resolved: %(error)s")
                % {"host": name, "error": exc}
            ) from exc
    allow_private = settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS
    for address in addresses:
        if address_refusal(address, allow_private=allow_private):
            raise TargetRefused(
                _(
                    "%(host)s is at %(address)s, a loopback, private, link-local or reserved "
                    "address: webhooks are not sent there."
                )
                % {"host": name, "address": address}
            )
    if not addresses:
        raise TargetRefused(_("The host %(host)s has no address.") % {"host": name})
    return addresses


def target_check(url: str, *, resolve: bool) -> None:
    """TargetRefused unless URL is http(s) with a host; with RESOLVE, its addresses checked too
    (a name that does not resolve now is let through: it is checked again on every POST)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise TargetRefused(_("A webhook target must be an http or https URL with a host."))
    if parts.username or parts.password:
        raise TargetRefused(_("A webhook target URL must not contain a user name or password."))
    if not resolve:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        target_addresses(parts.hostname, port)
    except TargetRefused as exc:
        if isinstance(exc.__cause__, OSError | UnicodeError):
            return  # does not resolve now: checked again on every POST
        raise


def client() -> httpx.Client:
    """A client for one delivery (knowledge.fetch's checked connections, with the webhooks'
    address rules): no redirects followed (a 3xx is a failed attempt), no proxy from the
    environment, no connection kept."""
    return checked_client(
        addresses=target_addresses,
        timeout=settings.WEBHOOKS_TIMEOUT_SECONDS,
        user_agent="AutoGLM-Webhooks/1.0",
        keepalive=0,
    )
