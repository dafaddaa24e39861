"""Admin: the audit trail (read only) and the privacy actions on visitors (chat.admin)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from chat.models import Visitor
from privacy import services
from privacy.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "actor_label", "target_kind", "target_id", "via")
    list_filter = ("action", "target_kind", "via", "created_at")
    search_fields = ("target_id", "actor_label")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.action(description=gettext_lazy("Export personal data (JSON)"), permissions=["view"])
def visitors_export(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Visitor]
) -> HttpResponse:
    exports = [
        services.visitor_export(visitor=v, actor=request.user, via="admin") for v in queryset
    ]
    data = exports[0] if len(exports) == 1 else {"visitors": exports}
    response = HttpResponse(
        json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json"
    )
    name = f"visitor-{exports[0]['visitor']['uuid']}" if len(exports) == 1 else "visitors"
    response["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response


@admin.action(description=gettext_lazy("Erase personal data"), permissions=["delete"])
def visitors_erase(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Visitor]
) -> HttpResponse | None:
    """Asks first (like the admin's delete), then erases each visitor and all their data."""
    if request.POST.get("confirm") == "yes":
        visitors = list(queryset)
        for visitor in visitors:
            services.visitor_erase(visitor=visitor, actor=request.user, via="admin")
        modeladmin.message_user(
            request,
            ngettext(
                "Erased %(count)d visitor and all their conversations.",
                "Erased %(count)d visitors and all their conversations.",
                len(visitors),
            )
            % {"count": len(visitors)},
            messages.SUCCESS,
        )
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": _("Erase personal data"),
        "opts": modeladmin.model._meta,
        "visitors": list(queryset),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": "visitors_erase",
    }
    return TemplateResponse(request, "privacy/erase_confirm.html", context)
