"""Which web origins may open the chat WebSocket: the site's own hosts plus embedding sites."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


def allowed_origin_patterns() -> list[str]:
    """ALLOWED_HOSTS (any scheme and port) plus CHAT_ALLOWED_ORIGINS (scheme, host and port).

    A CHAT_ALLOWED_ORIGINS entry is `https://shop.example.com`, `http://localhost:8001` or
    `https://.example.com` (the domain and all its subdomains), as channels' OriginValidator
    reads them. A malformed entry stops start-up instead of silently refusing every visitor.
    """
    extra: list[str] = list(getattr(settings, "CHAT_ALLOWED_ORIGINS", []))
    for origin in extra:
        parsed = urlparse(origin)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname or parsed.path:
            raise ImproperlyConfigured(
                f"CHAT_ALLOWED_ORIGINS entry {origin!r} must look like https://shop.example.com "
                "(a scheme and a host, an optional port, no path)."
            )
    return [*settings.ALLOWED_HOSTS, *extra]


class ChatOriginValidator(OriginValidator):
    """Refuses a WebSocket handshake whose Origin is not allowed, and logs the refusal once."""

    def __init__(self, application: Any) -> None:
        super().__init__(application, allowed_origin_patterns())
        self._logged: set[str] = set()

    def valid_origin(self, parsed_origin: Any) -> bool:
        ok = bool(super().valid_origin(parsed_origin))
        if not ok:
            origin = parsed_origin.geturl() if parsed_origin is not None else "(none)"
            if origin not in self._logged and len(self._logged) < 1000:
                self._logged.add(origin)
                logger.warning(
                    "chat WebSocket refused for origin %s: add it to CHAT_ALLOWED_ORIGINS", origin
                )
        return ok


def origin_allowed(origin: str | None) -> bool:
    """True when a page on `origin` may embed the chat; no Origin header is the site itself."""
    if not origin:
        return True
    validator = OriginValidator(None, allowed_origin_patterns())
    return bool(validator.valid_origin(urlparse(origin)))
