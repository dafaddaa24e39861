"""Liveness and readiness endpoints, against real PostgreSQL and a real Redis we can stop."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import Client

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, so stopping it harms nobody."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is needed (make test installs and starts Redis)")
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(50):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    yield url, process
    process.kill()
    process.wait(timeout=5)


def test_healthz_says_process_is_up(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_readyz_reports_each_check(client: Client) -> None:
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["checks"]) == {"database", "channel_layer", "llm"}
    assert body["checks"]["database"]["pgvector"]  # the extension is installed
    assert body["checks"]["llm"]["endpoints"][0]["ok"] is True


def test_readyz_fails_while_redis_is_stopped(client: Client, settings, private_redis) -> None:  # type: ignore[no-untyped-def]
    url, process = private_redis
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}
    }
    up = client.get("/readyz")
    assert up.status_code == 200, up.json()
    assert up.json()["checks"]["channel_layer"]["backend"] == "RedisChannelLayer"

    process.terminate()
    process.wait(timeout=5)
    down = client.get("/readyz")
    body = down.json()
    assert down.status_code == 503
    assert body["ok"] is False
    assert body["checks"]["channel_layer"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_readyz_tells_an_unadmitted_caller_only_the_status(client: Client) -> None:
    response = client.get("/readyz", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    # Through a proxy the peer address is the proxy's: loopback does not admit it either.
    proxied = client.get("/readyz", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert proxied.json() == {"status": "ok"}


def test_readyz_shows_details_to_a_probe_with_the_token(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = "probe-token-0123456789"  # noqa: S105 - test value
    response = client.get(
        "/readyz",
        REMOTE_ADDR="203.0.113.9",
        HTTP_AUTHORIZATION="Bearer probe-token-0123456789",
    )
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert set(body["checks"]) == {"database", "channel_layer", "llm"}
    wrong = client.get("/readyz", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.json() == {"status": "ok"}


def test_readyz_unavailable_hides_the_error_from_strangers(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{_free_port()}/0"]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = client.get("/readyz", REMOTE_ADDR="203.0.113.9")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_https_redirect_spares_the_probes(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/").status_code == 301
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
