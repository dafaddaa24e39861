"""The admin site (also the sign-in page of agents and translators), with throttled sign-in."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from autoglm_site.addresses import request_address
from autoglm_site.login_throttle import (
    login_failure_record,
    login_failures_clear,
    login_locked_out,
)


class ThrottledAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, refusing a user name and address after repeated failures."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": _(
            "Too many failed sign-in attempts. Please wait a few minutes and try again."
        ),
    }

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        address = request_address(self.request) if self.request else ""
        if username and login_locked_out(username=username, address=address):
            raise ValidationError(self.error_messages["throttled"], code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError as exc:
            if username and any(error.code == "invalid_login" for error in exc.error_list):
                login_failure_record(username=username, address=address)
            raise
        if username:
            login_failures_clear(username=username, address=address)
        return cleaned


class AdminSite(admin.AdminSite):
    login_form = ThrottledAuthenticationForm
