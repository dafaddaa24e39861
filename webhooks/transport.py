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
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings
from django.utils.translation import gettext as _

from knowledge.fetch import address_refusal


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


class _CheckedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in target_addresses(host, port):
            try:
                return self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc  # the host's next address, as socket.create_connection does
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise TargetRefused(_("Webhooks are not sent to Unix sockets."))


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's transport on a pool whose connections go through _CheckedBackend (httpx takes no
    network backend, so the pool it built is replaced, as knowledge.fetch does)."""

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=10,
            max_keepalive_connections=0,
            network_backend=_CheckedBackend(),
        )


def client() -> httpx.Client:
    """A client for one delivery: no redirects followed (a 3xx is a failed attempt), no proxy
    from the environment (it would be the one address checked)."""
    return httpx.Client(
        transport=_CheckedTransport(),
        follow_redirects=False,
        trust_env=False,
        timeout=settings.WEBHOOKS_TIMEOUT_SECONDS,
        headers={"User-Agent": "AutoGLM-Webhooks/1.0"},
    )
