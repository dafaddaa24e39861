"""Chat services against the real database."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import jwt
import pytest
from django.utils import timezone

from chat import errors, services
from chat.models import Conversation, Message, Visitor

pytestmark = pytest.mark.django_db


@pytest.fixture
def visitor() -> Visitor:
    return Visitor.objects.create()


def _send(
    visitor: Visitor, client_id: str, text: str = "Hello", conversation: Conversation | None = None
) -> services.SendResult:
    return services.message_send(
        visitor=visitor, conversation=conversation, language="en", client_id=client_id, text=text
    )


def test_first_message_opens_a_conversation_with_a_pending_reply(visitor: Visitor) -> None:
    result = _send(visitor, "a1", "  How do I pay?\r\n ")
    assert result.created
    assert result.message.text == "How do I pay?"
    assert result.conversation.language == "en"
    assert result.reply is not None and result.reply.status == Message.Status.PENDING
    assert result.reply.reply_to_id == result.message.pk


def test_send_is_idempotent_on_client_id(visitor: Visitor) -> None:
    first = _send(visitor, "same")
    again = _send(visitor, "same", conversation=first.conversation)
    retry_without_conversation = _send(visitor, "same")
    assert not again.created and not retry_without_conversation.created
    assert again.message.pk == first.message.pk == retry_without_conversation.message.pk
    assert again.reply is not None and first.reply is not None
    assert again.reply.pk == first.reply.pk
    assert Message.objects.count() == 2 and Conversation.objects.count() == 1


def test_invalid_message_stores_nothing(visitor: Visitor) -> None:
    with pytest.raises(errors.MessageEmpty):
        _send(visitor, "e", " \n\t ")
    with pytest.raises(errors.InvalidText):
        _send(visitor, "e", "bell \x07")
    with pytest.raises(errors.InvalidText):
        _send(visitor, "e", "nonchar \ufffe")
    assert Conversation.objects.count() == 0 and Message.objects.count() == 0


def test_text_with_scripts_and_emoji_is_kept_verbatim(visitor: Visitor) -> None:
    text = "مرحبا 👋 你好\nשלום — e\u0301 <b>bold</b>"
    assert _send(visitor, "u", text).message.text == text


def test_visitor_token_round_trip_and_forgery(visitor: Visitor) -> None:
    token = services.visitor_token(visitor=visitor)
    assert services.visitor_from_token(token=token) == visitor
    with pytest.raises(errors.InvalidToken):
        services.visitor_from_token(token=token[:-2] + "xx")
    assert services.visitor_from_token(token=None) != visitor


def test_visitor_token_expires_after_max_age_and_a_fresh_one_still_works(
    visitor: Visitor,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.CHAT_VISITOR_TOKEN_MAX_AGE_DAYS = 90
    issued_long_ago = time.time() - 91 * 86400
    with mock.patch("django.core.signing.time.time", return_value=issued_long_ago):
        old = services.visitor_token(visitor=visitor)
    with pytest.raises(errors.InvalidToken):
        services.visitor_from_token(token=old)
    # A token from a week ago (an older welcome's) still works next to the rotated one.
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 7 * 86400):
        week_old = services.visitor_token(visitor=visitor)
    assert services.visitor_from_token(token=week_old) == visitor
    fresh = services.visitor_token(visitor=visitor)
    assert services.visitor_from_token(token=fresh) == visitor


# --- Signed identities (JWTs from the host site) ----------------------------------------------
SECRET = "host-site-secret-for-tests-0123456789abcdef"  # noqa: S105 - test value


@pytest.fixture
def identity_settings(settings):  # type: ignore[no-untyped-def]
    settings.CHAT_IDENTITY_SECRET = SECRET
    settings.CHAT_IDENTITY_AUDIENCE = "autoglm-widget"
    settings.CHAT_IDENTITY_LEEWAY_SECONDS = 0
    settings.CHAT_IDENTITY_LEGACY_HMAC = False
    return settings


def _jwt(key: str = SECRET, lifetime: float = 300, **claims: object) -> str:
    now = int(time.time())
    payload = {"sub": "user-42", "iat": now, "exp": now + lifetime, "aud": "autoglm-widget"}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="HS256")


def test_identity_jwt_links_the_visitor_to_the_user(visitor: Visitor, identity_settings) -> None:  # type: ignore[no-untyped-def]
    token = _jwt(name="Lina", email="lina@example.com")
    assert services.identity_verify(token=token) == services.VerifiedIdentity(
        external_id="user-42", name="Lina", email="lina@example.com"
    )
    assert services.visitor_identify(visitor=visitor, token=token) == visitor
    visitor.refresh_from_db()
    assert visitor.external_id == "user-42"


def _unsigned() -> str:
    now = int(time.time())
    claims = {"sub": "user-42", "iat": now, "exp": now + 300, "aud": "autoglm-widget"}
    return jwt.encode(claims, "", algorithm="none")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(_jwt(lifetime=-60), id="expired"),
        pytest.param(_jwt(aud="another-app"), id="wrong-audience"),
        pytest.param(_jwt(aud=None), id="no-audience"),
        pytest.param(_jwt(exp=None), id="no-expiry"),
        pytest.param(_jwt(key="someone-elses-secret-0123456789abcdef"), id="wrong-key"),
        pytest.param(_jwt(lifetime=30 * 86400), id="too-long-lived"),
        pytest.param(_jwt(sub=""), id="empty-subject"),
        pytest.param(_jwt(sub="x" * 300), id="huge-subject"),
        pytest.param(_jwt(sub="tab\tin-id"), id="control-in-subject"),
        pytest.param(_unsigned(), id="alg-none"),
        pytest.param("not.a.jwt", id="malformed"),
        pytest.param("é" * 40, id="non-ascii"),
        pytest.param("a" * 100_000, id="huge"),
    ],
)
def test_bad_identity_is_refused_and_never_raises_anything_else(
    visitor: Visitor,
    identity_settings,
    token: str,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(errors.InvalidIdentity):
        services.visitor_identify(visitor=visitor, token=token)
    visitor.refresh_from_db()
    assert visitor.external_id == ""


def test_identity_replayed_after_expiry_is_refused(visitor: Visitor, identity_settings) -> None:  # type: ignore[no-untyped-def]
    token = _jwt(lifetime=300)
    assert services.identity_verify(token=token).external_id == "user-42"
    later = time.time() + 301
    with mock.patch("jwt.api_jwt.datetime") as clock:
        clock.now.return_value = datetime.fromtimestamp(later, tz=UTC)
        with pytest.raises(errors.InvalidIdentity):
            services.identity_verify(token=token)


def test_identity_needs_a_secret(visitor: Visitor, identity_settings) -> None:  # type: ignore[no-untyped-def]
    token = _jwt()
    identity_settings.CHAT_IDENTITY_SECRET = ""
    with pytest.raises(errors.InvalidIdentity):
        services.visitor_identify(visitor=visitor, token=token)


def test_legacy_hmac_identity_only_when_allowed(visitor: Visitor, identity_settings) -> None:  # type: ignore[no-untyped-def]
    signature = hmac.new(SECRET.encode(), b"user-7", hashlib.sha256).hexdigest()
    with pytest.raises(errors.InvalidIdentity):  # off by default: replayable forever
        services.visitor_identify(visitor=visitor, external_id="user-7", signature=signature)
    identity_settings.CHAT_IDENTITY_LEGACY_HMAC = True
    assert (
        services.visitor_identify(
            visitor=visitor, external_id="user-7", signature=signature.upper()
        ).external_id
        == "user-7"
    )
    for bad in ("0" * 64, "é" * 64, "\ud800" * 64, signature[:-1], "f" * 10_000):
        with pytest.raises(errors.InvalidIdentity):
            services.identity_verify(external_id="user-7", signature=bad)
    with pytest.raises(errors.InvalidIdentity):
        services.identity_verify(external_id="user-\ud800", signature=signature)


def test_claim_takes_replies_in_order_and_one_at_a_time(visitor: Visitor) -> None:
    first = _send(visitor, "1")
    second = _send(visitor, "2", conversation=first.conversation)
    claimed = services.reply_claim(conversation_id=first.conversation.pk)
    assert claimed is not None and first.reply is not None and claimed.pk == first.reply.pk
    assert services.reply_claim(conversation_id=first.conversation.pk) is None  # busy
    services.reply_finish(reply_id=claimed.pk, text="done", status=Message.Status.COMPLETE)
    following = services.reply_claim(conversation_id=first.conversation.pk)
    assert following is not None and second.reply is not None and following.pk == second.reply.pk


def test_recover_leaves_live_replies_alone_and_requeues_dead_ones(
    visitor: Visitor, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_REPLY_LEASE_SECONDS = 10
    sent = _send(visitor, "r")
    claimed = services.reply_claim(conversation_id=sent.conversation.pk)
    assert claimed is not None
    assert services.conversation_recover(conversation=sent.conversation).queued == []
    Message.objects.filter(pk=claimed.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=11), text="partial"
    )
    result = services.conversation_recover(conversation=sent.conversation)
    [fresh] = result.queued
    assert result.interrupted == [claimed.pk]
    claimed.refresh_from_db()
    assert claimed.status == Message.Status.INTERRUPTED and claimed.text == "partial"
    assert fresh.status == Message.Status.PENDING and fresh.reply_to_id == sent.message.pk


def test_cancel_before_start_cancels_pending_reply(visitor: Visitor) -> None:
    sent = _send(visitor, "c")
    result = services.reply_cancel(conversation=sent.conversation)
    assert sent.reply is not None
    assert result.cancelled == [sent.reply.pk] and result.stopping == []
    sent.reply.refresh_from_db()
    assert sent.reply.status == Message.Status.CANCELLED
    assert services.reply_claim(conversation_id=sent.conversation.pk) is None


def test_checkpoint_reports_cancel_request(visitor: Visitor) -> None:
    sent = _send(visitor, "k")
    claimed = services.reply_claim(conversation_id=sent.conversation.pk)
    assert claimed is not None
    assert services.reply_checkpoint(reply_id=claimed.pk, text="so far") is False
    services.reply_cancel(conversation=sent.conversation)
    assert services.reply_checkpoint(reply_id=claimed.pk, text="so far, more") is True
    claimed.refresh_from_db()
    assert claimed.text == "so far, more"


def test_finish_after_takeover_leaves_reply_interrupted(visitor: Visitor, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_REPLY_LEASE_SECONDS = 10
    sent = _send(visitor, "t")
    claimed = services.reply_claim(conversation_id=sent.conversation.pk)
    assert claimed is not None
    Message.objects.filter(pk=claimed.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=11)
    )
    services.conversation_recover(conversation=sent.conversation)
    # The slow-but-alive generator comes back: it must not overwrite the recovery.
    assert services.reply_checkpoint(reply_id=claimed.pk, text="late") is True
    assert services.reply_finish(reply_id=claimed.pk, text="late", status="complete") is None
    claimed.refresh_from_db()
    assert claimed.status == Message.Status.INTERRUPTED


def test_cancel_naming_an_interrupted_reply_stops_its_replacement(
    visitor: Visitor, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_REPLY_LEASE_SECONDS = 10
    sent = _send(visitor, "i")
    claimed = services.reply_claim(conversation_id=sent.conversation.pk)
    assert claimed is not None
    Message.objects.filter(pk=claimed.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=11)
    )
    [replacement] = services.conversation_recover(conversation=sent.conversation).queued
    result = services.reply_cancel(conversation=sent.conversation, message_id=claimed.pk)
    assert result.cancelled == [replacement.pk]
    replacement.refresh_from_db()
    assert replacement.status == Message.Status.CANCELLED


def test_knowledge_stored_once_when_two_replies_race(visitor: Visitor) -> None:
    from chat.models import TurnKnowledge

    sent = _send(visitor, "race", "How do I pay?")
    services.turn_knowledge(question=sent.message, language="en")
    again = Message.objects.get(pk=sent.message.pk)  # another generator's copy
    services.turn_knowledge(question=again, language="en")
    assert TurnKnowledge.objects.filter(message=sent.message).count() == 1
