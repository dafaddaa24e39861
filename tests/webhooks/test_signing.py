"""Signatures: what is signed, and what verify refuses (tampering, another secret, replays)."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from webhooks import signing

SECRET = "whsec_test-secret"
BODY = b'{"data":{"text":"\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7"},"type":"message.created"}'


def _headers(timestamp: int | None = None) -> dict[str, str]:
    return signing.sign(
        SECRET, BODY, delivery_id="d-1", event_type="message.created", timestamp=timestamp
    )


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    headers = _headers(1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert headers["X-AutoGLM-Signature"] == f"v1={expected}"
    assert headers["X-AutoGLM-Timestamp"] == "1700000000"
    assert headers["X-AutoGLM-Delivery"] == "d-1"
    assert headers["X-AutoGLM-Event"] == "message.created"


def test_a_fresh_signed_request_verifies_with_any_header_case() -> None:
    headers = {name.lower(): value for name, value in _headers().items()}
    assert signing.verify(SECRET, headers, BODY) == int(headers["x-autoglm-timestamp"])
    assert signing.verify(SECRET, _headers(), BODY.decode())  # str bodies too


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace(b"message", b"massage")),  # the body changed
        lambda h, b: ({**h, "X-AutoGLM-Timestamp": str(int(time.time()) - 1)}, b),  # time moved
        lambda h, b: ({**h, "X-AutoGLM-Signature": "v1=" + "0" * 64}, b),  # forged
        lambda h, b: ({**h, "X-AutoGLM-Signature": ""}, b),  # missing
        lambda h, b: ({k: v for k, v in h.items() if k != "X-AutoGLM-Timestamp"}, b),
    ],
    ids=["body", "timestamp", "forged", "no-signature", "no-timestamp"],
)
def test_a_tampered_request_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    headers, body = tamper(_headers(int(time.time()) - 5), BODY)
    with pytest.raises(signing.SignatureError):
        signing.verify(SECRET, headers, body)


def test_another_secret_does_not_verify() -> None:
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify("whsec_other", _headers(), BODY)


def test_a_stale_or_future_timestamp_is_refused_as_a_replay() -> None:
    now = time.time()
    old = _headers(int(now) - 301)
    with pytest.raises(signing.SignatureError, match="tolerance"):
        signing.verify(SECRET, old, BODY, now=now)
    future = _headers(int(now) + 301)
    with pytest.raises(signing.SignatureError, match="tolerance"):
        signing.verify(SECRET, future, BODY, now=now)
    # Within the tolerance it verifies; a receiver may choose its own.
    assert signing.verify(SECRET, _headers(int(now) - 299), BODY, now=now)
    with pytest.raises(signing.SignatureError):
        signing.verify(SECRET, _headers(int(now) - 299), BODY, tolerance=60, now=now)


def test_one_matching_signature_among_several_is_enough() -> None:
    headers = _headers()
    headers["X-AutoGLM-Signature"] = "v1=" + "a" * 64 + ", " + headers["X-AutoGLM-Signature"]
    assert signing.verify(SECRET, headers, BODY)
