"""The company glossary: kept per language by admins, rendered into the prompt."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError
from django.test import Client

from chat.glossary import glossary_for, glossary_prompt
from chat.models import GlossaryTerm

pytestmark = pytest.mark.django_db


def _terms() -> None:
    GlossaryTerm.objects.create(language="", term="Northwind Cloud", do_not_translate=True)
    GlossaryTerm.objects.create(language="", term="Pro plan", do_not_translate=True)
    GlossaryTerm.objects.create(language="fr", term="Pro plan", translation="formule Pro")
    GlossaryTerm.objects.create(language="fr", term="invoice", translation="facture")
    GlossaryTerm.objects.create(language="de", term="invoice", translation="Rechnung")


def test_glossary_for_a_language_includes_terms_for_every_language() -> None:
    _terms()
    french = [
        (term.term, term.translation, term.do_not_translate) for term in glossary_for(language="fr")
    ]
    assert french == [
        ("invoice", "facture", False),
        ("Northwind Cloud", "", True),
        ("Pro plan", "formule Pro", False),  # the French entry overrides the general one
    ]
    japanese = [term.term for term in glossary_for(language="ja")]
    assert japanese == ["Northwind Cloud", "Pro plan"]


def test_glossary_accepts_regional_codes() -> None:
    _terms()
    assert [term.term for term in glossary_for(language="fr-CA")] == [
        term.term for term in glossary_for(language="fr")
    ]


def test_glossary_prompt_lists_every_rule_stably() -> None:
    _terms()
    text = glossary_prompt(language="fr")
    assert text.splitlines() == [
        "Company glossary: in your reply, use these terms exactly as given.",
        '- "invoice": write it as "facture".',
        '- "Northwind Cloud": keep exactly as written, never translate it.',
        '- "Pro plan": write it as "formule Pro".',
    ]
    assert glossary_prompt(language="fr") == text  # byte-stable: the cached prompt prefix


def test_glossary_prompt_is_empty_without_terms() -> None:
    assert glossary_prompt(language="ko") == ""


def test_glossary_prompt_keeps_each_term_on_one_line() -> None:
    GlossaryTerm.objects.create(
        language="es", term='Sync\n"Pro"', translation="Sincronización\nPro"
    )
    assert glossary_prompt(language="es").splitlines()[1:] == [
        '- "Sync \'Pro\'": write it as "Sincronización Pro".'
    ]


def test_a_term_needs_exactly_one_rule() -> None:
    with pytest.raises(IntegrityError):
        GlossaryTerm.objects.create(language="fr", term="invoice")


def test_a_term_cannot_be_both_kept_and_translated() -> None:
    with pytest.raises(IntegrityError):
        GlossaryTerm.objects.create(
            language="fr", term="invoice", translation="facture", do_not_translate=True
        )


def test_admins_keep_the_glossary_in_the_admin() -> None:
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/chat/glossaryterm/add/",
        {"language": "ja", "term": "Northwind Sync", "translation": "", "do_not_translate": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert GlossaryTerm.objects.get(language="ja").do_not_translate
    invalid = client.post(
        "/admin/chat/glossaryterm/add/",
        {"language": "ja", "term": "invoice", "translation": ""},
    )
    assert invalid.status_code == 200  # the form shows the constraint's message
    assert not GlossaryTerm.objects.filter(term="invoice").exists()
