"""The admin-edited tables that shape replies, glossary terms and decoding presets: their reads
and writes for the HTTP API. Saving through the model keeps the prompt memos right
(autoglm_site.memo forgets on post_save/post_delete)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from chat.models import DecodingPreset, GlossaryTerm

MAX_ID = 2**31 - 1
GLOSSARY_FIELDS = ("language", "term", "translation", "do_not_translate")
PRESET_FIELDS = (
    "assistant",
    "task",
    "temperature",
    "top_p",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "seed",
)


def glossary_term_list(*, language: str | None = None) -> QuerySet[GlossaryTerm]:
    rows = GlossaryTerm.objects.all()
    return rows.filter(language=language) if language is not None else rows


def glossary_term_get(*, term_id: int) -> GlossaryTerm | None:
    return GlossaryTerm.objects.filter(pk=term_id).first() if 0 < term_id <= MAX_ID else None


def glossary_term_save(*, term_id: int | None, fields: Mapping[str, Any]) -> GlossaryTerm | None:
    """Create (TERM_ID None) or change a glossary term, validated as the admin validates it
    (one rule: a translation or "do not translate"; one entry per term and language)."""
    with transaction.atomic():
        if term_id is None:
            term = GlossaryTerm()
        else:
            found = GlossaryTerm.objects.select_for_update().filter(pk=term_id).first()
            if found is None:
                return None
            term = found
        for name in GLOSSARY_FIELDS:
            if name in fields:
                setattr(term, name, fields[name])
        term.term = term.term.strip()
        term.translation = term.translation.strip()
        term.full_clean()
        term.save()
    return term


def glossary_term_delete(*, term_id: int) -> bool:
    term = glossary_term_get(term_id=term_id)
    if term is None:
        return False
    term.delete()  # through the model: the prompt memos hear of it
    return True


def decoding_preset_list(*, task: str | None = None) -> QuerySet[DecodingPreset]:
    rows = DecodingPreset.objects.all()
    return rows.filter(task=task) if task else rows


def decoding_preset_get(*, preset_id: int) -> DecodingPreset | None:
    return DecodingPreset.objects.filter(pk=preset_id).first() if 0 < preset_id <= MAX_ID else None


def decoding_preset_save(
    *, preset_id: int | None, fields: Mapping[str, Any]
) -> DecodingPreset | None:
    """Create (PRESET_ID None) or change a decoding preset within the admin's bounds."""
    with transaction.atomic():
        if preset_id is None:
            preset = DecodingPreset()
        else:
            found = DecodingPreset.objects.select_for_update().filter(pk=preset_id).first()
            if found is None:
                return None
            preset = found
        for name in PRESET_FIELDS:
            if name in fields:
                setattr(preset, name, fields[name])
        preset.assistant = preset.assistant.strip()
        preset.full_clean()
        preset.save()
    return preset


def decoding_preset_delete(*, preset_id: int) -> bool:
    preset = decoding_preset_get(preset_id=preset_id)
    if preset is None:
        return False
    preset.delete()
    return True
