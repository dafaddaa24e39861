"""A visitor with one of everything the privacy app exports and erases."""

from __future__ import annotations

from dataclasses import dataclass

from chat.models import (
    Conversation,
    Feedback,
    Message,
    MessageTranslation,
    TurnKnowledge,
    Visitor,
)
from inbox.models import Csat


@dataclass
class VisitorData:
    visitor: Visitor
    conversation: Conversation
    question: Message
    reply: Message


def visitor_with_data(
    external_id: str = "", text: str = "My email is lina@example.com"
) -> VisitorData:
    visitor = Visitor.objects.create(external_id=external_id)
    conversation = Conversation.objects.create(
        visitor=visitor, language="de", opening_client_id="c1", visitor_email="lina@example.com"
    )
    question = Message.objects.create(
        conversation=conversation,
        role=Message.Role.USER,
        text=text,
        status=Message.Status.COMPLETE,
        client_id="c1",
    )
    TurnKnowledge.objects.create(
        message=question, snippets=[{"title": "Accounts", "url": "", "text": "Reset it."}]
    )
    MessageTranslation.objects.create(
        message=question, language="en", text="translated", status=MessageTranslation.Status.DONE
    )
    reply = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        text="Thanks.",
        status=Message.Status.COMPLETE,
        reply_to=question,
    )
    Feedback.objects.create(message=reply, rating=Feedback.Rating.UP, comment="good")
    Csat.objects.create(conversation=conversation, rating=5, comment="great")
    return VisitorData(visitor, conversation, question, reply)
