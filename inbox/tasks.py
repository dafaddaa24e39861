"""Celery tasks of the human side: tickets answered by e-mail, transcripts by e-mail."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from chat.models import Conversation, Message, MessageTranslation

logger = logging.getLogger(__name__)

_TRANSLATION_WAIT_SECONDS = 120


@shared_task(bind=True, max_retries=30, default_retry_delay=5, acks_late=True)
def ticket_reply_email(self, *, message_id: int) -> None:  # type: ignore[no-untyped-def]
    """E-mail an agent's reply to a ticket's visitor: in the visitor's language (when its
    translation is ready; it is waited for up to two minutes), with the original below."""
    message = Message.objects.select_related("conversation", "author").filter(pk=message_id).first()
    if message is None or not message.conversation.visitor_email:
        return
    conversation = message.conversation
    while True:
        translated = MessageTranslation.objects.filter(
            message=message, language=conversation.language
        ).first()
        age = (timezone.now() - message.created_at).total_seconds()
        if (
            translated is None
            or translated.status != MessageTranslation.Status.PENDING
            or age >= _TRANSLATION_WAIT_SECONDS
        ):
            break
        if not self.request.is_eager:
            raise self.retry(countdown=5)
        time.sleep(2)  # in the web process's background thread (no broker): just wait
    with translation.override(conversation.language):
        subject = _("Your conversation with %(company)s") % {
            "company": settings.CHAT_ASSISTANT_NAME
        }
        if translated is not None and translated.status == MessageTranslation.Status.DONE:
            body = "\n\n".join([translated.text, "—", _("Original message:"), message.text])
        else:
            body = message.text
    EmailMessage(subject=subject, body=body, to=[conversation.visitor_email]).send()


@shared_task(acks_late=True)
def transcript_email(*, conversation_id: str, address: str) -> None:
    """The conversation's transcript, as text in the body and as a PDF attachment."""
    from inbox.transcripts import transcript_pdf, transcript_text

    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return
    language = conversation.language
    with translation.override(language):
        subject = _("Transcript of your conversation")
    mail = EmailMessage(
        subject=subject,
        body=transcript_text(conversation=conversation, language=language),
        to=[address],
    )
    mail.attach(
        f"transcript-{conversation.pk}.pdf",
        transcript_pdf(conversation=conversation, language=language),
        "application/pdf",
    )
    mail.send()
