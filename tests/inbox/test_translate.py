"""Message translation: what must stay exact is protected, a damaged translation is refused."""

from __future__ import annotations

import pytest

from chat.llm.base import LLMError
from chat.llm.fake import FakeBackend
from chat.models import GlossaryTerm
from inbox.translate import TranslationError, protect, restore, text_translate, translation_request

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "text",
    [
        "Ihre Bestellung #4521 kostet 19,99 € (bis 2026-12-01).",
        "Details: https://shop.example/orders/4521?x=1. Oder mail an help@shop.example!",
        "Run `pip install autoglm` then:\n```\nmake run\n```",
        "Rufen Sie +49 30 1234567 an, Anna hilft.",
    ],
)
def test_protected_spans_round_trip_exactly(text: str) -> None:
    protected = protect(text, keep=["Anna"])
    assert "4521" not in protected.text and "https://" not in protected.text
    assert "Anna" not in protected.text
    assert restore(protected.text, protected) == text


def test_a_translation_that_loses_or_invents_a_placeholder_is_refused() -> None:
    protected = protect("Order #4521 costs $5.", keep=[])
    with pytest.raises(TranslationError):
        restore("Bestellung kostet ⟦2⟧.", protected)
    with pytest.raises(TranslationError):
        restore("⟦1⟧ ⟦2⟧ ⟦3⟧", protected)


async def _translate(text: str, *, source: str = "de", target: str = "ar") -> str:
    from asgiref.sync import sync_to_async

    request, protected = await sync_to_async(translation_request)(
        text=text, source=source, target=target
    )
    translated, _backend = await text_translate(request=request, protected=protected)
    return translated


@pytest.mark.django_db(transaction=True)
async def test_the_glossarys_untranslated_terms_are_kept_and_told_to_the_model() -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(GlossaryTerm.objects.create)(term="Northwind Cloud", do_not_translate=True)
    translated = await _translate("Northwind Cloud ist down.")
    assert translated == "[ar] Northwind Cloud ist down."
    request = FakeBackend.requests[-1]
    assert "Northwind" not in request.query and request.task == "translate"


@pytest.mark.django_db(transaction=True)
async def test_an_engine_failure_a_damaged_output_and_a_slow_engine_fail_the_translation(
    settings,  # type: ignore[no-untyped-def]
) -> None:
    FakeBackend.script.append(LLMError("down"))
    with pytest.raises(TranslationError):
        await _translate("Hallo")
    FakeBackend.script.append("Bestellung ⟦7⟧")  # invented placeholder
    with pytest.raises(TranslationError):
        await _translate("Bestellung #4521")
    settings.INBOX_TRANSLATION_TIMEOUT_SECONDS = 0.05
    settings.LLM_FAKE_FIRST_TOKEN_MS = 500
    with pytest.raises(TranslationError):
        await _translate("Hallo")
