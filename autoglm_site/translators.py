"""Who may edit the interface catalogues in the browser (django-rosetta): the Translators group."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse

# Created by the data migration chat/0003; it holds no model permissions, so its members see
# nothing in the admin but the translation pages.
TRANSLATORS_GROUP = "Translators"


def can_translate(user: Any) -> bool:
    """ROSETTA_ACCESS_CONTROL_FUNCTION: active superusers and active members of Translators."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return bool(user.groups.filter(name=TRANSLATORS_GROUP).exists())


def catalogues_outside_project(request: HttpRequest, po_filter: str) -> HttpResponse:
    """Rosetta also lists Django's and third-party catalogues (files inside the virtualenv):
    translators edit the project's catalogues only."""
    raise Http404("Only the project's catalogues can be translated here.")
