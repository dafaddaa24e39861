"""Emitting events and delivering them: after commit only, signed, retried with backoff."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone

from tests.webhooks.receiver import Receiver
from webhooks import services, signing
from webhooks.models import Attempt, Delivery, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_background(settings) -> None:  # type: ignore[no-untyped-def]
    # These tests make each attempt themselves: no thread or timer of the embedded mode.
    settings.BACKGROUND_IN_PROCESS = False


def subscribe(receiver: Receiver, *types: str, **fields: object) -> Subscription:
    subscription = services.subscription_create(
        name="CRM",
        target_url=receiver.url,
        event_types=list(types or ["message.created"]),
        **fields,  # type: ignore[arg-type]
    )
    receiver.secret = subscription.secret
    return subscription


def emit(event_type: str = "message.created", **data: object) -> list[Delivery]:
    return services.event_emit(event_type=event_type, payload={"n": 1, **data})


def test_nobody_subscribed_costs_no_query(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    Subscription.objects.create(
        name="Other", target_url="http://127.0.0.1:9/", event_types=["csat.created"]
    )
    services.subscribed_event_types()  # remembered for a few seconds
    built = mock.Mock(return_value={})
    with django_assert_num_queries(0):
        for _ in range(100):
            assert services.event_emit(event_type="message.created", payload=built) == []
    built.assert_not_called()  # the payload is not even described


def test_a_new_subscription_is_seen_at_once_in_its_process(receiver: Receiver) -> None:
    assert emit() == []
    subscribe(receiver)
    assert len(emit()) == 1


def test_an_inactive_subscription_or_another_event_gets_nothing(receiver: Receiver) -> None:
    subscribe(receiver, "csat.created")
    subscribe(receiver, "message.created", active=False)
    assert emit("message.created") == []
    assert [d.event_type for d in emit("csat.created")] == ["csat.created"]


def test_the_delivery_is_enqueued_only_after_commit(
    receiver: Receiver,
    settings,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    settings.BACKGROUND_IN_PROCESS = False
    subscribe(receiver)
    with mock.patch("webhooks.tasks.deliver.apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            with transaction.atomic():
                (delivery,) = emit()
            apply_async.assert_not_called()
        for callback in callbacks:
            callback()
    apply_async.assert_called_once_with(kwargs={"delivery_id": delivery.pk})


def test_a_rolled_back_change_is_never_announced(
    receiver: Receiver,
    settings,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    settings.BACKGROUND_IN_PROCESS = False
    subscribe(receiver)
    with (
        mock.patch("webhooks.tasks.deliver.apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        assert len(emit()) == 1
        raise RuntimeError("the service failed after emitting")
    assert callbacks == []
    apply_async.assert_not_called()
    assert not Delivery.objects.exists()


def test_a_delivery_is_a_signed_post_the_receiver_verifies(receiver: Receiver) -> None:
    subscription = subscribe(receiver)
    (delivery,) = emit(text="مرحبا 你好")
    done = services.delivery_attempt(delivery_id=delivery.pk)
    assert done is not None and done.status == Delivery.Status.SUCCEEDED
    (request,) = receiver.received
    assert request.verified, request.problem
    assert request.path == "/hook"
    assert request.headers["X-AutoGLM-Delivery"] == str(delivery.delivery_id)
    assert request.headers["X-AutoGLM-Event"] == "message.created"
    assert request.headers["Content-Type"] == "application/json"
    assert abs(int(request.headers["X-AutoGLM-Timestamp"]) - time.time()) < 30
    body = request.json
    assert body["type"] == "message.created"
    assert body["id"] == str(delivery.event_id)
    assert body["data"] == {"n": 1, "text": "مرحبا 你好"}
    # What was POSTed is what the log keeps, byte for byte.
    assert request.body == services.body_of(done)
    assert json.loads(request.body) == done.payload
    done.refresh_from_db()
    assert (done.attempts, done.response_status, done.last_error) == (1, 200, "")
    assert done.delivered_at is not None and done.next_attempt_at is None
    assert done.response_ms is not None and done.response_ms >= 0
    # The receiver's check fails with another secret: the signature is the subscription's.
    with pytest.raises(signing.SignatureError):
        signing.verify("whsec_wrong", request.headers, request.body)
    assert subscription.secret.startswith("whsec_")


def test_a_500_is_retried_with_backoff_then_success_is_recorded(
    receiver: Receiver,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 0.5
    subscribe(receiver)
    receiver.statuses = [500, 503]
    (delivery,) = emit()

    def scheduled(after: Delivery) -> float:
        """Seconds from the start of the last attempt to the next one."""
        attempt = Attempt.objects.get(delivery=after, number=after.attempts)
        assert after.next_attempt_at is not None
        return (after.next_attempt_at - attempt.started_at).total_seconds()

    first = services.delivery_attempt(delivery_id=delivery.pk)
    assert first is not None and first.status == Delivery.Status.PENDING
    assert first.response_status == 500 and "HTTP 500" in first.last_error
    assert "nope" in first.last_error  # the start of what the target said
    assert 0.4 <= scheduled(first) <= 0.6 + 1.0  # base x 2^0 +-20%, and the POST's time
    # Not due yet: a task that comes early (or twice) sends nothing.
    assert services.delivery_attempt(delivery_id=delivery.pk) is None
    assert len(receiver.received) == 1
    assert services.deliveries_due() == []
    time.sleep(max((first.next_attempt_at - timezone.now()).total_seconds(), 0) + 0.05)  # type: ignore[operator]
    assert services.deliveries_due() == [delivery.pk]  # the beat task hands it out again
    second = services.delivery_attempt(delivery_id=delivery.pk)
    assert second is not None
    assert second.response_status == 503 and second.status == Delivery.Status.PENDING
    assert 0.8 <= scheduled(second) <= 1.2 + 1.0  # base x 2^1: longer than the first could be
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    third = services.delivery_attempt(delivery_id=delivery.pk)
    assert third is not None and third.status == Delivery.Status.SUCCEEDED
    assert third.attempts == 3 and third.response_status == 200 and third.last_error == ""
    log = list(Attempt.objects.filter(delivery=delivery).values_list("number", "response_status"))
    assert log == [(1, 500), (2, 503), (3, 200)]
    assert len({r.headers["X-AutoGLM-Delivery"] for r in receiver.received}) == 1


def test_after_the_last_attempt_the_delivery_has_failed(receiver: Receiver, settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_MAX_ATTEMPTS = 2
    subscribe(receiver)
    receiver.statuses = [500, 500, 500]
    (delivery,) = emit()
    services.delivery_attempt(delivery_id=delivery.pk)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    last = services.delivery_attempt(delivery_id=delivery.pk)
    assert last is not None and last.status == Delivery.Status.FAILED
    assert last.next_attempt_at is None and last.attempts == 2
    assert services.deliveries_due() == []


def test_the_default_schedule_doubles_from_one_minute(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 60.0
    for attempts, minutes in [(1, 1), (2, 2), (3, 4), (7, 64)]:
        delays = [services.retry_delay(attempts) for _ in range(50)]
        assert all(0.8 * minutes * 60 <= d <= 1.2 * minutes * 60 for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_a_timeout_and_a_closed_port_are_failed_attempts(receiver: Receiver, settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_TIMEOUT_SECONDS = 0.3
    subscribe(receiver)
    receiver.delay = 1.0
    (delivery,) = emit()
    slow = services.delivery_attempt(delivery_id=delivery.pk)
    assert slow is not None and slow.status == Delivery.Status.PENDING
    assert slow.response_status is None and "0.3 seconds" in slow.last_error
    closed = services.subscription_create(
        name="Down", target_url="http://127.0.0.1:9/hook", event_types=["csat.created"]
    )
    (down,) = emit("csat.created")
    assert down.subscription_id == closed.pk
    failed = services.delivery_attempt(delivery_id=down.pk)
    assert failed is not None and failed.status == Delivery.Status.PENDING
    assert failed.response_status is None and failed.last_error


def test_private_targets_are_refused_unless_allowed(receiver: Receiver, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(services.SubscriptionInvalid):
        services.subscription_create(
            name="x", target_url="ftp://example.com/", event_types=["csat.created"]
        )
    with pytest.raises(services.SubscriptionInvalid):
        services.subscription_create(name="x", target_url="http://127.0.0.1/", event_types=["nope"])
    subscribe(receiver)
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(services.SubscriptionInvalid, match="127.0.0.1"):
        services.subscription_create(
            name="x", target_url=receiver.url, event_types=["csat.created"]
        )
    for url in (
        "http://169.254.169.254/latest/",
        "http://[::ffff:10.0.0.1]/",
        "http://localhost:1/",
    ):
        with pytest.raises(services.SubscriptionInvalid):
            services.subscription_create(name="x", target_url=url, event_types=["csat.created"])
    # A subscription made while they were allowed is refused when it is sent, not connected to.
    (delivery,) = emit()
    refused = services.delivery_attempt(delivery_id=delivery.pk)
    assert refused is not None and refused.status == Delivery.Status.PENDING
    assert "127.0.0.1" in refused.last_error and refused.response_status is None
    assert receiver.received == []
    # Link-local (the metadata service) is refused even when private targets are allowed.
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    with pytest.raises(services.SubscriptionInvalid):
        services.subscription_create(
            name="x", target_url="http://169.254.169.254/", event_types=["csat.created"]
        )


def test_replay_sends_the_same_delivery_again_once(receiver: Receiver) -> None:
    subscribe(receiver)
    (delivery,) = emit()
    services.delivery_attempt(delivery_id=delivery.pk)
    pending = services.delivery_replay(delivery=delivery)  # its task runs after commit
    assert pending.status == Delivery.Status.PENDING
    replayed = services.delivery_attempt(delivery_id=delivery.pk, replay=True)
    assert replayed is not None and replayed.status == Delivery.Status.SUCCEEDED
    first, again = receiver.received
    assert again.verified
    assert again.body == first.body
    assert again.headers["X-AutoGLM-Delivery"] == first.headers["X-AutoGLM-Delivery"]
    assert [a.replay for a in Attempt.objects.filter(delivery=delivery)] == [False, True]


def test_a_failed_replay_is_not_retried(receiver: Receiver) -> None:
    subscribe(receiver)
    (delivery,) = emit()
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED)
    receiver.statuses = [500]
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.PENDING, next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    replayed = services.delivery_attempt(delivery_id=delivery.pk, replay=True)
    assert replayed is not None and replayed.status == Delivery.Status.FAILED
    assert replayed.next_attempt_at is None
