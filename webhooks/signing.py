"""Signatures of webhook deliveries: HMAC-SHA256 over "<timestamp>.<body>" with the secret.

A receiver recomputes the signature with its copy of the secret, compares it in constant time
and refuses a timestamp further than TOLERANCE_SECONDS from its clock (a replayed request).
This module has no Django dependency: receivers may copy it (docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 300
TIMESTAMP_HEADER = "X-AutoGLM-Timestamp"
DELIVERY_HEADER = "X-AutoGLM-Delivery"
EVENT_HEADER = "X-AutoGLM-Event"
SIGNATURE_HEADER = "X-AutoGLM-Signature"
SCHEME = "v1"


class SignatureError(Exception):
    """The request is not signed with the secret, or its timestamp is too old or too new."""


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def signature(secret: str, timestamp: int, body: bytes | str) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>" keyed with SECRET."""
    message = str(int(timestamp)).encode() + b"." + _as_bytes(body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(
    secret: str, body: bytes | str, *, delivery_id: str, event_type: str, timestamp: int | None
) -> dict[str, str]:
    """The headers of one signed request (TIMESTAMP: unix seconds, now when None)."""
    when = int(time.time()) if timestamp is None else int(timestamp)
    return {
        TIMESTAMP_HEADER: str(when),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event_type,
        SIGNATURE_HEADER: f"{SCHEME}={signature(secret, when, body)}",
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is not None:
        return value
    # A plain dict with other capitalisation (Django's request.headers and http.server's
    # headers already match names case-insensitively).
    wanted = name.lower()
    return next((found for key, found in headers.items() if key.lower() == wanted), "")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: int = TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> int:
    """Check a delivery's signature; its timestamp, or SignatureError saying what is wrong.

    HEADERS are the request's headers (any mapping; names are matched case-insensitively),
    BODY the raw request body exactly as received (not re-serialised JSON). The signature header
    may carry several comma-separated "v1=..." values (during a secret's rotation); one match
    is enough.
    """
    raw_timestamp = _header(headers, TIMESTAMP_HEADER).strip()
    if not raw_timestamp.isdigit():
        raise SignatureError(f"missing or malformed {TIMESTAMP_HEADER} header")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(f"timestamp outside the tolerance of {tolerance} seconds")
    expected = signature(secret, timestamp, body)
    offered = [
        part.strip()[len(SCHEME) + 1 :]
        for part in _header(headers, SIGNATURE_HEADER).split(",")
        if part.strip().startswith(f"{SCHEME}=")
    ]
    if not offered:
        raise SignatureError(f"missing or malformed {SIGNATURE_HEADER} header")
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise SignatureError("signature does not match")
    return timestamp
