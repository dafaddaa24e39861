"""The events services emit, one function each: the hook is one call, its payload built here.

Each payload is built only when some active subscription wants the event (event_emit calls
the builder), so an unwatched event costs no query. Shapes: docs/webhooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webhooks.services import event_emit, subscribed_event_types

if TYPE_CHECKING:
    from chat.models import Conversation, Feedback, Message
    from inbox.models import AgentProfile, Csat
    from knowledge.models import Article, SyncRun


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    visitor = conversation.visitor
    return {
        "id": str(conversation.pk),
        "language": conversation.language,
        "status": conversation.status,
        "mode": conversation.mode,
        "visitor": {"id": str(visitor.uuid), "external_id": visitor.external_id or None},
        "assignee_id": conversation.assignee_id,
        "team_id": conversation.team_id,
        "created_at": _time(conversation.created_at),
    }


def _agent(agent: AgentProfile | None) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {"id": agent.user_id, "name": agent.name}


def conversation_created(*, conversation: Conversation) -> None:
    event_emit(
        event_type="conversation.created",
        payload=lambda: {"conversation": conversation_data(conversation)},
        conversation_id=conversation.pk,
    )


def message_created(*, message: Message) -> None:
    """A visitor's or an agent's message, or an assistant's reply once it is complete (with
    its citations); private notes and event lines are not announced."""
    if message.role not in {"user", "agent", "assistant"}:
        return

    def payload() -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": message.pk,
            "role": message.role,
            "text": message.text,
            "language": message.language or None,
            "author_id": message.author_id,
            "created_at": _time(message.created_at),
        }
        if message.role == "assistant":
            from chat.selectors import reply_citations

            body["reply_to"] = message.reply_to_id
            body["citations"] = reply_citations(reply=message)
        return {"conversation_id": str(message.conversation_id), "message": body}

    event_emit(
        event_type="message.created", payload=payload, conversation_id=message.conversation_id
    )


def handoff_requested(*, conversation: Conversation) -> None:
    event_emit(
        event_type="handoff.requested",
        payload=lambda: {
            "conversation": conversation_data(conversation),
            "reason": conversation.handoff_reason,
            "detail": conversation.handoff_detail,
            "requested_at": _time(conversation.handoff_at),
        },
        conversation_id=conversation.pk,
    )


def conversation_assigned(
    *, conversation: Conversation, agent: AgentProfile | None, by: AgentProfile | None
) -> None:
    """Taken, assigned or transferred: to AGENT, or (None) to its team's waiting queue."""
    event_emit(
        event_type="conversation.assigned",
        payload=lambda: {
            "conversation": conversation_data(conversation),
            "agent": _agent(agent),
            "by": _agent(by),
        },
        conversation_id=conversation.pk,
    )


def conversation_resolved(*, conversation: Conversation, by: AgentProfile | None) -> None:
    event_emit(
        event_type="conversation.resolved",
        payload=lambda: {
            "conversation": conversation_data(conversation),
            "by": _agent(by),
            "resolved_at": _time(conversation.resolved_at),
        },
        conversation_id=conversation.pk,
    )


def feedback_created(*, feedback: Feedback) -> None:
    if "feedback.created" not in subscribed_event_types():
        return  # (its conversation's id would cost a query)
    event_emit(
        event_type="feedback.created",
        payload=lambda: {
            "conversation_id": str(feedback.message.conversation_id),
            "message_id": feedback.message_id,
            "rating": feedback.rating,
            "comment": feedback.comment,
            "created_at": _time(feedback.updated_at),
        },
        conversation_id=feedback.message.conversation_id,
    )


def csat_created(*, csat: Csat) -> None:
    event_emit(
        event_type="csat.created",
        payload=lambda: {
            "conversation_id": str(csat.conversation_id),
            "rating": csat.rating,
            "comment": csat.comment,
            "agent_id": csat.agent_id,
            "created_at": _time(csat.updated_at),
        },
        conversation_id=csat.conversation_id,
    )


def _article(article: Article) -> dict[str, Any]:
    return {
        "id": article.pk,
        "external_id": article.external_id,
        "title": article.title,
        "url": article.url or None,
        "source_id": article.source_id,
        "category_id": article.category_id,
    }


def article_published(*, article: Article) -> None:
    event_emit(event_type="article.published", payload=lambda: {"article": _article(article)})


def articles_published(*, article_ids: list[int]) -> None:
    """One article.published event per article of ARTICLE_IDS (just published together)."""
    from knowledge.models import Article

    if not article_ids or "article.published" not in subscribed_event_types():
        return
    for article in Article.objects.filter(pk__in=article_ids).order_by("pk"):
        article_published(article=article)


def sync_run_finished(*, run: SyncRun) -> None:
    """sync.failed when the run failed as a whole, else sync.finished (perhaps partial)."""
    event_type = "sync.failed" if run.status == "failed" else "sync.finished"

    def payload() -> dict[str, Any]:
        source = run.source
        return {
            "sync_run": {
                "id": run.pk,
                "source": None if source is None else {"id": source.pk, "name": source.name},
                "status": run.status,
                "trigger": run.trigger,
                "started_at": _time(run.started_at),
                "finished_at": _time(run.finished_at),
                "counts": {
                    name: getattr(run, name)
                    for name in ("total", "added", "updated", "unchanged", "deleted", "failed")
                },
                "errors": list(run.errors or [])[:20],
            }
        }

    event_emit(event_type=event_type, payload=payload)
