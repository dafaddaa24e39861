"""Webhooks in the admin: subscriptions (a new one's secret shown once to its creator, and to
superusers on its page), and the delivery log with its attempts and a replay action."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from webhooks import services
from webhooks.models import EVENT_TYPES, Attempt, Delivery, Subscription
from webhooks.transport import TargetRefused, target_check


class SubscriptionForm(forms.ModelForm):
    target_url = forms.URLField(label=_("target URL"), max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        label=_("events"),
        choices=[(name, f"{name}: {text}") for name, text in EVENT_TYPES.items()],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Subscription
        fields = ("name", "target_url", "event_types", "active")

    def clean_target_url(self) -> str:
        url: str = self.cleaned_data["target_url"]
        try:
            target_check(url, resolve=True)
        except TargetRefused as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url

    def clean_event_types(self) -> list[str]:
        return sorted(set(self.cleaned_data["event_types"]))


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionForm
    list_display = ("name", "target_url", "event_types", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("name", "target_url")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and getattr(request.user, "is_superuser", False):
            return ("signing_secret", "created_at")
        return ("created_at",) if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*self.form.Meta.fields, *self.get_readonly_fields(request, obj)]

    @admin.display(description=_("signing secret"))
    def signing_secret(self, obj: Subscription) -> str:
        return format_html("<code>{}</code>", obj.secret)

    def save_model(self, request: HttpRequest, obj: Subscription, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in form.Meta.fields}
        if change:
            services.subscription_update(subscription=obj, **fields)
            return
        created = services.subscription_create(**fields)
        obj.pk, obj.secret, obj.created_at = created.pk, created.secret, created.created_at
        obj._state.adding = False
        messages.warning(
            request,
            _(
                "The signing secret of this subscription is %(secret)s. Copy it to the "
                "receiver now: only superusers can see it again."
            )
            % {"secret": created.secret},
        )


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "response_status", "response_ms", "error", "replay")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "event_type",
        "subscription",
        "status",
        "attempts",
        "response_status",
        "response_ms",
        "next_attempt_at",
    )
    list_filter = ("status", "event_type", "subscription")
    search_fields = ("=delivery_id", "=event_id")
    list_select_related = ("subscription",)
    fields = (
        "subscription",
        "event_type",
        "event_id",
        "delivery_id",
        "status",
        "attempts",
        "response_status",
        "response_ms",
        "last_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
        "payload_shown",
    )
    readonly_fields = fields
    inlines = (AttemptInline,)
    actions = ("replay",)

    @admin.display(description=_("payload"))
    def payload_shown(self, obj: Delivery) -> str:
        text = json.dumps(obj.payload, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html("<pre>{}</pre>", text)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Send the selected deliveries again"), permissions=["change"])
    def replay(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = 0
        for delivery in queryset:
            services.delivery_replay(delivery=delivery)
            count += 1
        self.message_user(
            request,
            ngettext(
                "%(count)s delivery will be sent again.",
                "%(count)s deliveries will be sent again.",
                count,
            )
            % {"count": count},
        )
