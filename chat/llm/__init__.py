"""Inference backends behind one interface, chosen by dotted path in settings (LLM_BACKEND)."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from chat.llm.base import LLMBackend


@cache
def _backend_for(path: str) -> LLMBackend:
    backend_class = import_string(path)
    backend = backend_class()
    if not isinstance(backend, LLMBackend):
        raise TypeError(f"{path} is not an LLMBackend")
    return backend


def get_backend() -> LLMBackend:
    """The process-wide backend for settings.LLM_BACKEND, built on first use."""
    return _backend_for(settings.LLM_BACKEND)
