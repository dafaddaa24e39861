"""The lease keeper (chat.leases) against the real database: a held reply stays alive however
busy the reply pool is; a released one runs out and is recovered."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from chat import services
from chat.leases import LeaseKeeper
from chat.models import Message, Visitor

pytestmark = pytest.mark.django_db(transaction=True)  # the keeper's thread has its own connection


def _claimed(settings) -> Message:  # type: ignore[no-untyped-def]
    settings.CHAT_REPLY_LEASE_SECONDS = 10
    sent = services.message_send(
        visitor=Visitor.objects.create(), conversation=None, language="en", client_id="l", text="Hi"
    )
    reply = services.reply_claim(conversation_id=sent.conversation.pk)
    assert reply is not None
    return reply


def _age(reply: Message, seconds: float) -> None:
    Message.objects.filter(pk=reply.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_renew_refreshes_only_held_streaming_replies(settings) -> None:  # type: ignore[no-untyped-def]
    reply = _claimed(settings)
    keeper = LeaseKeeper()
    assert keeper.renew() is None  # nothing held
    _age(reply, 11)
    with keeper.held(reply.pk):
        assert keeper.holding() == [reply.pk]
        assert keeper.renew() == 1
        assert services.conversation_recover(conversation=reply.conversation).interrupted == []
        services.reply_finish(reply_id=reply.pk, text="done", status=Message.Status.COMPLETE)
        assert keeper.renew() == 0  # finished: its heartbeat is not brought back
    reply.refresh_from_db()
    assert reply.status == Message.Status.COMPLETE and reply.heartbeat_at is None
    assert keeper.holding() == []


def test_the_thread_keeps_a_held_reply_alive_and_a_released_one_runs_out(settings) -> None:  # type: ignore[no-untyped-def]
    reply = _claimed(settings)
    settings.CHAT_REPLY_LEASE_SECONDS = 1.5  # the thread renews every 0.5 s
    keeper = LeaseKeeper()
    with keeper.held(reply.pk):
        _age(reply, 60)  # as if no checkpoint had run for a minute (the reply pool was busy)
        deadline = time.monotonic() + 10
        while keeper.renewals < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert keeper.renewals >= 2
        assert services.conversation_recover(conversation=reply.conversation).interrupted == []
    renewed = keeper.renewals
    time.sleep(1.0)
    assert keeper.renewals == renewed  # released: nothing renews it now
    _age(reply, 2)
    result = services.conversation_recover(conversation=reply.conversation)
    assert result.interrupted == [reply.pk] and len(result.queued) == 1


def test_two_holds_of_one_reply_release_separately(settings) -> None:  # type: ignore[no-untyped-def]
    reply = _claimed(settings)
    keeper = LeaseKeeper()
    with keeper.held(reply.pk):
        with keeper.held(reply.pk):
            assert keeper.holding() == [reply.pk]
        assert keeper.holding() == [reply.pk]
    assert keeper.holding() == []


def test_the_watchdog_reads_each_reply_state_in_one_query(
    settings, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    from chat import selectors

    streaming = _claimed(settings)
    stale = _claimed(settings)
    _age(stale, 11)
    done = _claimed(settings)
    services.reply_finish(reply_id=done.pk, text="Done.", status=Message.Status.COMPLETE)
    pending = services.message_send(
        visitor=Visitor.objects.create(), conversation=None, language="en", client_id="p", text="?"
    ).reply
    assert pending is not None
    ids = [streaming.pk, stale.pk, done.pk, pending.pk, 10**9]
    with django_assert_num_queries(1):
        states = selectors.replies_watched(ids=ids, lease_seconds=10)
    assert states[streaming.pk] == "streaming" and states[stale.pk] == "stale"
    assert states[pending.pk] == "pending" and 10**9 not in states
    event = states[done.pk]
    assert not isinstance(event, str) and event["status"] == "complete" and event["length"] == 5


async def test_a_reply_end_is_stored_once_the_database_is_back(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.db import OperationalError

    from chat import replies

    settings.CHAT_REPLY_LEASE_SECONDS = 5
    calls: list[dict[str, object]] = []

    def flaky(**fields: object) -> str:
        calls.append(fields)
        if len(calls) < 3:
            raise OperationalError("the database system is shutting down")
        return "stored"

    monkeypatch.setattr(replies, "_finish", flaky)
    assert await replies._stored_end(reply_id=7, text="Hi") == "stored"
    assert len(calls) == 3 and calls[-1] == {"reply_id": 7, "text": "Hi"}

    settings.CHAT_REPLY_LEASE_SECONDS = 0.2  # past twice the lease the error goes up
    calls.clear()
    monkeypatch.setattr(replies, "_finish", lambda **f: (_ for _ in ()).throw(OperationalError()))
    with pytest.raises(OperationalError):
        await replies._stored_end(reply_id=7, text="Hi")


async def test_a_failed_checkpoint_does_not_stop_the_reply(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.db import OperationalError

    from chat import replies

    def down(**fields: object) -> bool:
        raise OperationalError("connection refused")

    monkeypatch.setattr(replies.services, "reply_checkpoint", down)
    assert await replies._checkpoint(7, "partial") is False
