"""Admin for reviewing conversations with their messages."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from chat.models import Conversation, DecodingPreset, Feedback, GlossaryTerm, Message, Visitor
from privacy.admin import visitors_erase, visitors_export


class MessageInline(admin.TabularInline):
    model = Message
    fk_name = "conversation"
    fields = ("id", "role", "status", "text", "completion_tokens", "ttft_ms", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("id",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "visitor",
        "language",
        "status",
        "mode",
        "handoff_reason",
        "assignee",
        "message_count",
        "created_at",
        "updated_at",
    )
    list_filter = ("language", "status", "mode", "handoff_reason", "team", "created_at")
    search_fields = ("id", "visitor__uuid", "visitor__external_id", "messages__text")
    readonly_fields = (
        "id",
        "visitor",
        "opening_client_id",
        "handoff_at",
        "assigned_at",
        "resolved_at",
        "reopened_at",
        "created_at",
        "updated_at",
    )
    inlines = [MessageInline]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(message_total=Count("messages"))

    @admin.display(description=_("messages"), ordering="message_total")
    def message_count(self, obj: Conversation) -> int:
        return int(getattr(obj, "message_total", 0))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, object] | None = None,
    ) -> HttpResponse:
        from privacy.services import conversation_view_record

        response = super().change_view(request, object_id, form_url, extra_context)
        obj = getattr(response, "context_data", {}).get("original")
        if request.method == "GET" and response.status_code == 200 and obj is not None:
            conversation_view_record(conversation=obj, actor=request.user, via="admin")
        return response


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "conversation",
        "role",
        "status",
        "completion_tokens",
        "ttft_ms",
        "created_at",
    )
    list_filter = ("role", "status", "conversation__language")
    search_fields = ("text", "client_id")
    raw_id_fields = ("conversation", "reply_to")
    readonly_fields = ("created_at", "updated_at", "heartbeat_at")


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin):
    list_display = ("uuid", "external_id", "created_at", "last_seen_at")
    search_fields = ("uuid", "external_id")
    actions = (visitors_export, visitors_erase)


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("message", "rating", "comment", "created_at")
    list_filter = ("rating",)
    raw_id_fields = ("message",)


@admin.register(DecodingPreset)
class DecodingPresetAdmin(admin.ModelAdmin):
    list_display = (
        "task",
        "assistant",
        "temperature",
        "top_p",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "updated_at",
    )
    list_filter = ("task",)
    search_fields = ("assistant",)


@admin.register(GlossaryTerm)
class GlossaryTermAdmin(admin.ModelAdmin):
    list_display = ("term", "language", "translation", "do_not_translate", "updated_at")
    list_filter = ("language", "do_not_translate")
    search_fields = ("term", "translation")
    fields = ("language", "term", "translation", "do_not_translate")
