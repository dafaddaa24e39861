"""API keys in the admin: a new key's secret is shown once, on the page after it is created."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from api.models import SCOPES, ApiCall, ApiKey


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"),
        choices=[(scope, f"{scope}: {text}") for scope, text in SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "rate_limit_per_minute")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, plaintext = ApiKey.issue(
            obj.name,
            list(form.cleaned_data.get("scopes") or []),
            created_by=request.user,
            rate_limit=obj.rate_limit_per_minute,
        )
        obj.pk, obj.prefix, obj.digest = key.pk, key.prefix, key.digest
        obj._state.adding = False
        messages.warning(
            request,
            _("The new API key is %(key)s. Copy it now: it is stored hashed and not shown again.")
            % {"key": plaintext},
        )

    @admin.action(description=_("Revoke the selected keys"))
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for key in queryset.filter(revoked_at__isnull=True):
            key.revoke()


@admin.register(ApiCall)
class ApiCallAdmin(admin.ModelAdmin):
    list_display = ("created_at", "method", "path", "status", "key", "user", "duration_ms")
    list_filter = ("status", "method")
    search_fields = ("path",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
