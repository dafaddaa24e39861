"""Webhook test helpers: a loopback receiver, private targets allowed, short retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhooks.receiver import Receiver, serve


@pytest.fixture(autouse=True)
def _webhook_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # the receiver is on loopback
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 0.2
    settings.WEBHOOKS_TIMEOUT_SECONDS = 5.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()
