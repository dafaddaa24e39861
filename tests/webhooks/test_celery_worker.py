"""Webhooks through real Celery processes (a worker and beat) on the Redis broker.

A visitor's message, stored by the chat service in this process, is delivered by the worker
to a receiver on loopback here; the receiver fails the first POST with a 500, and beat's sweep
hands the retry to the worker once its backoff has passed.
"""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

import pytest

from autoglm_site.celery import app
from chat import services as chat
from chat.models import Visitor
from tests.knowledge.test_celery_worker import Celery, _until, celery  # noqa: F401 - fixture
from tests.webhooks.receiver import Receiver
from webhooks import services
from webhooks.models import Attempt, Delivery
from webhooks.tasks import deliver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

WEBHOOK_ENV = {
    "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOKS_RETRY_BASE_SECONDS": "1",
    "WEBHOOKS_SWEEP_SECONDS": "1",
}


def test_a_worker_delivers_retries_after_a_500_and_records_success(
    celery: Celery,  # noqa: F811 - the fixture
    receiver: Receiver,
    settings: Any,
) -> None:
    settings.BACKGROUND_IN_PROCESS = False  # enqueued on the broker, as in production
    subscription = services.subscription_create(
        name="CRM", target_url=receiver.url, event_types=["message.created"]
    )
    receiver.secret = subscription.secret
    receiver.statuses = [500]
    worker = celery.worker("webhooks", visibility_timeout=600, **WEBHOOK_ENV)
    celery.beat(**WEBHOOK_ENV)

    # What the service enqueues after commit goes to the test's Redis broker.
    send = deliver.apply_async
    sent: list[dict[str, Any]] = []

    def to_broker(*, kwargs: dict[str, Any], **options: Any) -> Any:
        sent.append(kwargs)
        with app.connection_for_write(celery.broker_url) as broker:
            return send(kwargs=kwargs, connection=broker, **options)

    with mock.patch.object(deliver, "apply_async", side_effect=to_broker):
        result = chat.message_send(
            visitor=Visitor.objects.create(),
            conversation=None,
            language="en",
            client_id="c1",
            text="Where is my parcel?",
        )
    (delivery,) = Delivery.objects.all()
    assert sent == [{"delivery_id": delivery.pk}]

    first, second = receiver.wait_for(2, timeout=180)
    assert first.verified and second.verified, (first.problem, second.problem)
    assert first.body == second.body
    assert first.json["data"]["message"]["id"] == result.message.pk
    assert second.headers["X-AutoGLM-Delivery"] == str(delivery.delivery_id)
    done = _until(
        "the delivery to be recorded as succeeded",
        lambda: Delivery.objects.filter(pk=delivery.pk, status="succeeded").first(),
        worker,
    )
    assert done.attempts == 2 and done.response_status == 200 and done.last_error == ""
    attempts = list(Attempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.response_status for a in attempts] == [500, 200]
    # The retry waited for its backoff (1 s base, jittered by at most 20%).
    gap = (attempts[1].started_at - attempts[0].started_at).total_seconds()
    assert gap >= 0.8, gap
    assert "Task webhooks.tasks.deliver[" in worker.output()
    time.sleep(0.5)
    assert len(receiver.received) == 2  # nothing sent a third time
