"""Admin for the human side: teams and their hours, agents, canned replies, handoff rules,
satisfaction ratings (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from inbox.models import AgentProfile, CannedReply, Csat, HandoffRule, Team


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "languages", "time_zone", "created_at")
    search_fields = ("name",)


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "display_name", "preferred_language", "languages", "last_seen_at")
    list_filter = ("preferred_language", "teams")
    search_fields = ("user__username", "display_name")
    filter_horizontal = ("teams",)
    raw_id_fields = ("user",)
    readonly_fields = ("last_seen_at",)


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin):
    list_display = ("shortcut", "language", "title", "updated_at")
    list_filter = ("language",)
    search_fields = ("shortcut", "title", "text")


@admin.register(HandoffRule)
class HandoffRuleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "language", "category", "team", "active")
    list_filter = ("language", "active", "category")
    search_fields = ("keywords",)


@admin.register(Csat)
class CsatAdmin(admin.ModelAdmin):
    list_display = ("conversation", "rating", "agent", "created_at")
    list_filter = ("rating", "agent")
    readonly_fields = ("conversation", "agent", "rating", "comment", "created_at", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
