"""Fetches web pages and sitemaps with limits: public addresses only (checked on every connection
and redirect, connected to as checked), allowed hosts, size, deadline, content type, encoding."""

from __future__ import annotations

import contextvars
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from django.conf import settings
from django.utils.translation import gettext as _

_TEXT_TYPES = (
    "text/html",
    "application/xhtml+xml",
    "text/plain",
    "text/markdown",
    "text/x-markdown",
    "application/xml",
    "text/xml",
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Names of cloud instance-metadata services (they resolve to link-local or internal addresses,
# refused anyway; named here so a resolver that maps them elsewhere cannot reopen them).
_METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "metadata.tencentyun.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
# NAT64 well-known prefix: such an address reaches the IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The end of the fetch in progress in this thread (time.monotonic()), for every read and write.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "knowledge_fetch_deadline", default=None
)


class FetchError(Exception):
    """A page could not be fetched or read; the message says why, for the sync run's errors."""


class AddressRefused(FetchError):
    """The URL's host is, or resolves to, an address a sync must never reach."""


@dataclass(frozen=True)
class Fetched:
    url: str
    not_modified: bool
    text: str
    content_type: str
    etag: str
    last_modified: str


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether HOST is one of PATTERNS: exact host names, or `*.example.com` for its subdomains
    (and example.com itself)."""
    host = _normal_host(host)
    for pattern in patterns:
        pattern = _normal_host(pattern)
        if pattern.startswith("*."):
            if host == pattern[2:] or host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: str, *, allow_private: bool = False) -> str | None:
    """Why ADDRESS (an IP literal) must not be fetched, or None when it is a public address.

    ALLOW_PRIVATE (development and tests) lets loopback, private and unique-local addresses
    through, never link-local ones (the cloud metadata service lives at 169.254.169.254),
    multicast, unspecified or reserved ones.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_refusal(str(embedded), allow_private=allow_private)
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "reserved"
    if ip.is_loopback or ip.is_private or not ip.is_global:
        # is_private covers RFC 1918, fc00::/7 and documentation ranges; is_global also excludes
        # shared address space (CGNAT, 100.64.0.0/10).
        return None if allow_private else "private"
    return None


def _resolve(host: str, port: int) -> list[str]:
    """The addresses HOST resolves to (the system resolver), in its order. Tests patch this."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_addresses(host: str, port: int) -> list[str]:
    """The addresses of HOST, resolved once and all checked; AddressRefused when any is not a
    public address (or HOST is a metadata service's name)."""
    name = _normal_host(host)
    if name in _METADATA_HOSTS:
        raise AddressRefused(
            _("%(host)s is a cloud metadata service: it is never fetched.") % {"host": name}
        )
    try:
        addresses = [str(ipaddress.ip_address(name.split("%", 1)[0]))]
    except ValueError:
        try:
            addresses = _resolve(name, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError(
                _("The host %(host)s could not be resolved: %(error)s")
                % {"host": name, "error": exc}
            ) from exc
    if not addresses:
        raise FetchError(_("The host %(host)s has no address.") % {"host": name})
    allow_private = settings.KNOWLEDGE_FETCH_ALLOW_PRIVATE
    for address in addresses:
        if address_refusal(address, allow_private=allow_private):
            raise AddressRefused(
                _(
                    "%(host)s is at %(address)s, a loopback, private, link-local or reserved "
                    "address: it is never fetched."
                )
                % {"host": name, "address": address}
            )
    return addresses


def _remaining(timeout: float | None) -> float | None:
    """TIMEOUT shortened to what is left of the fetch's deadline; a timeout once it has passed."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the fetch's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads and writes all end by the fetch's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # server_hostname is the URL's host (httpcore passes it): SNI and the certificate check
        # are for the name, while the socket is connected to the address checked for it.
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, _remaining(timeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


# A host's addresses, resolved and checked (or an exception saying why it may not be reached).
AddressCheck = Callable[[str, int], list[str]]


class _PublicOnlyBackend(httpcore.NetworkBackend):
    """Opens every connection to an address checked for its host just before, never to a name:
    resolving again between the check and the connect (DNS rebinding) is not possible.
    ADDRESSES checks them (checked_addresses: the syncs' rules; webhooks bring their own)."""

    def __init__(self, addresses: AddressCheck | None = None) -> None:
        self._backend = httpcore.SyncBackend()
        self._addresses = addresses or checked_addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in self._addresses(host, port):
            try:
                stream = self._backend.connect_tcp(
                    address, port, _remaining(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc  # the next address of the host, as socket.create_connection does
                continue
            return _DeadlineStream(stream)
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise AddressRefused(_("Unix sockets are never fetched."))


def _ssl_context() -> ssl.SSLContext:
    """Certificates checked against certifi's authorities (httpx's default). Tests patch this."""
    return httpx.create_ssl_context(trust_env=False)


class _PublicOnlyTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool whose connections go through _PublicOnlyBackend.

    httpx does not take a network backend, so the pool it built is replaced (its `_pool`, which
    handle_request and close use; tests/knowledge/test_fetch_security.py fails if that changes).
    """

    def __init__(self, addresses: AddressCheck | None = None, *, keepalive: int = 5) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=10,
            max_keepalive_connections=keepalive,
            keepalive_expiry=5.0,
            network_backend=_PublicOnlyBackend(addresses),
        )


def checked_client(
    *, addresses: AddressCheck, timeout: float, user_agent: str, keepalive: int = 5
) -> httpx.Client:
    """A client that connects only to addresses ADDRESSES checked: no redirects followed (the
    caller follows them hop by hop, or not at all), no proxy from the environment (it would be
    the one address checked)."""
    return httpx.Client(
        transport=_PublicOnlyTransport(addresses, keepalive=keepalive),
        follow_redirects=False,
        trust_env=False,
        timeout=timeout,
        headers={"User-Agent": user_agent},
    )


def client() -> httpx.Client:
    """The client fetch() is given: redirects are followed by fetch itself, hop by hop."""
    return checked_client(
        addresses=checked_addresses,
        timeout=settings.KNOWLEDGE_FETCH_TIMEOUT_SECONDS,
        user_agent="AutoGLM-knowledge-sync/1.0",
    )


def decode(data: bytes, *, charset: str | None, sniff_html: bool) -> str:
    """Text of DATA: the declared charset, else a <meta charset>, else UTF-8; errors are loud."""
    if b"\x00" in data[:8192]:
        raise FetchError(_("The content is binary, not text."))
    if not charset and sniff_html:
        match = _META_CHARSET.search(data[:4096])
        charset = match.group(1).decode("ascii") if match else None
    encoding = charset or "utf-8"
    try:
        return data.decode(encoding)
    except LookupError as exc:
        raise FetchError(_("Unknown text encoding %(encoding)s.") % {"encoding": encoding}) from exc
    except UnicodeDecodeError as exc:
        raise FetchError(
            _("The content is not valid %(encoding)s text.") % {"encoding": encoding}
        ) from exc


def _check_url(url: str, allowed_hosts: Collection[str] | None) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise FetchError(_("Only http and https URLs can be fetched: %(url)s") % {"url": url})
    if not parts.hostname:
        raise FetchError(_("The URL has no host: %(url)s") % {"url": url})
    if allowed_hosts is not None and not host_allowed(parts.hostname, allowed_hosts):
        raise AddressRefused(
            _(
                "%(host)s is not one of this source's allowed domains (add it there to "
                "sync it): %(url)s"
            )
            % {"host": parts.hostname, "url": url}
        )


def fetch(
    http: httpx.Client,
    url: str,
    *,
    etag: str = "",
    last_modified: str = "",
    allowed_hosts: Collection[str] | None = None,
) -> Fetched:
    """GET URL (conditionally when validators are given) within the configured limits.

    Redirects are followed here, at most MAX_REDIRECTS, each hop checked like the first URL:
    http(s), a host among ALLOWED_HOSTS (None: any), and (on connecting, by the client) public
    addresses only. Everything, redirects included, ends by KNOWLEDGE_FETCH_DEADLINE_SECONDS.
    """
    seconds = settings.KNOWLEDGE_FETCH_DEADLINE_SECONDS
    token = _deadline.set(time.monotonic() + seconds)
    try:
        return _fetch(http, url, etag, last_modified, allowed_hosts)
    except httpx.TimeoutException as exc:
        if (_deadline.get() or 0) <= time.monotonic():
            raise FetchError(
                _("The page took longer than %(seconds)s seconds in all.") % {"seconds": seconds}
            ) from exc
        raise FetchError(_("The server did not answer in time.")) from exc
    except httpx.HTTPError as exc:
        raise FetchError(
            _("The page could not be fetched: %(error)s")
            % {"error": str(exc) or type(exc).__name__}
        ) from exc
    finally:
        _deadline.reset(token)


def _fetch(
    http: httpx.Client,
    url: str,
    etag: str,
    last_modified: str,
    allowed_hosts: Collection[str] | None,
) -> Fetched:
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    limit = settings.KNOWLEDGE_FETCH_MAX_BYTES
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        _check_url(current, allowed_hosts)
        with http.stream("GET", current, headers=headers, follow_redirects=False) as response:
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                current = urljoin(current, location)
                continue
            if response.status_code == 304:
                return Fetched(current, True, "", "", etag, last_modified)
            if response.status_code >= 300:
                raise FetchError(
                    _("The server answered HTTP %(status)s.") % {"status": response.status_code}
                )
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type and content_type not in _TEXT_TYPES:
                raise FetchError(_("Unsupported content type %(type)s.") % {"type": content_type})
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError(_("The page is larger than %(limit)s bytes.") % {"limit": limit})
            body = bytearray()
            for part in response.iter_bytes():
                body.extend(part)
                if len(body) > limit:
                    raise FetchError(
                        _("The page is larger than %(limit)s bytes.") % {"limit": limit}
                    )
            text = decode(
                bytes(body),
                charset=response.charset_encoding,
                sniff_html=content_type in {"text/html", "application/xhtml+xml", ""},
            )
            return Fetched(
                url=current,
                not_modified=False,
                text=text,
                content_type=content_type,
                etag=response.headers.get("etag", ""),
                last_modified=response.headers.get("last-modified", ""),
            )
    raise FetchError(_("Too many redirects (a redirect loop?)."))
