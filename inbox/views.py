"""The inbox's HTTP side: the page and its JSON reads (docs/inbox.md). Edges only: parse,
check the agent, call a selector, answer."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.http import require_GET

from chat import errors
from chat.models import Conversation
from inbox import selectors, services
from inbox.models import AgentProfile

View = Callable[..., HttpResponse]


def agent_required(*, api: bool) -> Callable[[View], View]:
    """Signed-in agents (or staff) only; the page redirects to the login, the API answers 403.
    The response is in the agent's preferred language."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                profile = services.agent_profile(user=request.user)
            except errors.AgentRequired as exc:
                if not api and not request.user.is_authenticated:
                    return redirect_to_login(request.get_full_path(), login_url="/admin/login/")
                return JsonResponse({"code": exc.code, "message": exc.render()}, status=403)
            with translation.override(profile.preferred_language):
                response = view(request, profile, *args, **kwargs)
                response.headers.setdefault("Content-Language", profile.preferred_language)
                return response

        return wrapper

    return decorate


@require_GET
@agent_required(api=False)
def inbox_page(request: HttpRequest, agent: AgentProfile) -> HttpResponse:
    return render(
        request,
        "inbox/inbox.html",
        {"agent": agent, "ws_path": "/ws/inbox/", "api_base": "/inbox/api/"},
    )


@require_GET
@agent_required(api=True)
def api_me(request: HttpRequest, agent: AgentProfile) -> HttpResponse:
    return JsonResponse(selectors.agent_me(agent=agent))


@require_GET
@agent_required(api=True)
def api_conversations(request: HttpRequest, agent: AgentProfile) -> HttpResponse:
    params = request.GET
    team = params.get("team", "")
    return JsonResponse(
        selectors.conversations_list(
            agent=agent,
            queue=params.get("queue", "waiting"),
            language=params.get("language", "")[:16],
            team_id=int(team) if team.isdigit() else None,
            reason=params.get("reason", "")[:32],
            query=params.get("q", "")[:200],
        )
    )


@require_GET
@agent_required(api=True)
def api_canned(request: HttpRequest, agent: AgentProfile) -> HttpResponse:
    language = request.GET.get("language", "")[:16] or agent.preferred_language
    return JsonResponse(selectors.canned_replies(language=language), safe=False)


@require_GET
@agent_required(api=True)
def api_knowledge(request: HttpRequest, agent: AgentProfile) -> HttpResponse:
    language = request.GET.get("language", "")[:16] or agent.preferred_language
    hits = selectors.knowledge_for_agent(query=request.GET.get("q", ""), language=language)
    return JsonResponse(hits, safe=False)


@require_GET
@agent_required(api=False)
def transcript(
    request: HttpRequest, agent: AgentProfile, conversation_id: uuid.UUID
) -> HttpResponse:
    from inbox.transcripts import transcript_pdf
    from privacy.services import conversation_view_record

    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404
    conversation_view_record(conversation=conversation, actor=request.user, via="inbox")
    pdf = transcript_pdf(
        conversation=conversation, language=agent.preferred_language, include_notes=True
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="transcript-{conversation.pk}.pdf"'
    return response
