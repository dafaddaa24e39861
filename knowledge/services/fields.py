"""The translated fields of knowledge models: configured languages and localized field names."""

from __future__ import annotations

from django.conf import settings
from modeltranslation.utils import build_localized_fieldname

TRANSLATED_FIELDS = ("title", "body", "url")


def languages() -> tuple[str, ...]:
    return tuple(settings.MODELTRANSLATION_LANGUAGES)


def field_name(name: str, language: str) -> str:
    return build_localized_fieldname(name, language)
