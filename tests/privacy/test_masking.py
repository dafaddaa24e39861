"""PII detectors, the masker's placeholders and their restoration in a streamed reply."""

from __future__ import annotations

import pytest

from privacy.masking import PiiMasker, PlaceholderRestorer

MASKED = [
    ("lina.k+shop@example.co.uk", "EMAIL"),
    ("4111 1111 1111 1111", "CARD"),
    ("5555555555554444", "CARD"),
    ("3782 822463 10005", "CARD"),
    ("DE89 3704 0044 0532 0130 00", "IBAN"),
    ("GB82WEST12345698765432", "IBAN"),
    ("123-45-6789", "NATIONAL_ID"),  # US SSN
    ("86095742719", "NATIONAL_ID"),  # German Steuer-ID
    ("2 55 08 14 168 025 38", "NATIONAL_ID"),  # French NIR
    ("12345678Z", "NATIONAL_ID"),  # Spanish DNI
    ("X1234567L", "NATIONAL_ID"),  # Spanish NIE
    ("529.982.247-25", "NATIONAL_ID"),  # Brazilian CPF
    ("11010519491231002X", "NATIONAL_ID"),  # Chinese resident id
    ("A123456789", "NATIONAL_ID"),  # Taiwanese id
    ("123456789018", "NATIONAL_ID"),  # Japanese My Number
    ("900101-1234567", "NATIONAL_ID"),  # Korean RRN
    ("9001011234568", "NATIONAL_ID"),  # Korean RRN, check digit
    ("123456782", "NATIONAL_ID"),  # Israeli Teudat Zehut
    ("1234567897", "NATIONAL_ID"),  # Saudi national id
    ("784-1968-6570305-0", "NATIONAL_ID"),  # Emirates id
    ("112-233-445 95", "NATIONAL_ID"),  # Russian SNILS
    ("+49 30 1234567", "PHONE"),
    ("+1 (555) 123-4567", "PHONE"),
    ("0033 6 12 34 56 78", "PHONE"),
    ("06 12 34 56 78", "PHONE"),
    ("090-1234-5678", "PHONE"),
    ("(555) 123-4567", "PHONE"),
    ("13812345678", "PHONE"),
]

KEPT = [
    "4111 1111 1111 1112",  # Luhn fails
    "DE89 3704 0044 0532 0130 01",  # mod 97 fails
    "666-12-3456",  # never issued
    "86095742718",  # Steuer-ID check digit
    "2 55 08 14 168 025 39",  # NIR key
    "12345678A",  # DNI letter
    "529.982.247-24",  # CPF check digits
    "110105194912310021",  # resident id check digit
    "123456789012",  # My Number check digit
    "123456789",  # Teudat Zehut check digit
    "112-233-445 94",  # SNILS checksum
    "order 48213",
    "05.03.2024",
    "2024-03-05",
    "12:30",
    "€1,299.00",
    "version 3.11.4",
]


@pytest.mark.parametrize(("value", "kind"), MASKED)
def test_valid_values_are_masked(value: str, kind: str) -> None:
    masker = PiiMasker()
    masked = masker.mask(f"Hi, mine is {value} thanks")
    assert masked == f"Hi, mine is [{kind}_1] thanks"
    assert masker.originals == {f"[{kind}_1]": value}


@pytest.mark.parametrize("value", KEPT)
def test_invalid_checksums_and_ordinary_numbers_are_kept(value: str) -> None:
    text = f"Hi, it is {value} thanks"
    assert PiiMasker().mask(text) == text


def test_numbers_next_to_cjk_text_are_found() -> None:
    assert PiiMasker().mask("我的电话13812345678。") == "我的电话[PHONE_1]。"


def test_same_value_same_placeholder_across_turns() -> None:
    masker = PiiMasker()
    first = masker.mask("Mail LINA@example.com or bob@example.com")
    second = masker.mask("I said lina@example.com, card 4111-1111-1111-1111")
    assert first == "Mail [EMAIL_1] or [EMAIL_2]"
    assert second == "I said [EMAIL_1], card [CARD_1]"
    # A fresh masker over the same turns numbers them the same (the prompt prefix is stable).
    again = PiiMasker()
    assert [again.mask(t) for t in ("Mail LINA@example.com or bob@example.com",)] == [first]


def test_restorer_restores_placeholders_split_across_pieces() -> None:
    restorer = PlaceholderRestorer({"[EMAIL_1]": "lina@example.com", "[CARD_1]": "4111"})
    pieces = ["Write to [EM", "AIL_", "1] or use [", "CARD_1", "]. [Other] text ["]
    shown = "".join(restorer.feed(p) for p in pieces) + restorer.flush()
    assert shown == "Write to lina@example.com or use 4111. [Other] text ["


def test_restorer_leaves_unknown_placeholders_and_passes_through_without_any() -> None:
    assert PlaceholderRestorer({"[EMAIL_1]": "a@b.co"}).feed("[EMAIL_2] ok") == "[EMAIL_2] ok"
    assert PlaceholderRestorer({}).feed("[EM") == "[EM"
