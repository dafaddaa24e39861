"""Personal data kept from the model: e-mail addresses, phone, card, IBAN and national id numbers
in the prompt become typed placeholders ([EMAIL_1], [CARD_1]), put back in the reply.

Numbers with a check digit are masked only when it holds (a card's Luhn digit, an IBAN's
mod-97, a CPF's two digits...), so order numbers and amounts reach the model unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

# Digits and letters around a match: ASCII only, so that a number written right after a CJK
# character (电话13812345678) is still found (\b treats CJK as word characters).
_L = r"(?<![0-9A-Za-z])"
_R = r"(?![0-9A-Za-z])"


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def luhn_valid(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _card(text: str) -> bool:
    number = _digits(text)
    return 13 <= len(number) <= 19 and number[0] in "23456" and luhn_valid(number)


def _iban(text: str) -> bool:
    value = re.sub(r"\s", "", text).upper()
    if not 15 <= len(value) <= 34:
        return False
    moved = value[4:] + value[:4]
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def _us_ssn(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in {"000", "666"} and area[0] != "9" and group != "00" and serial != "0000"


def _de_steuer_id(text: str) -> bool:
    """ISO 7064 MOD 11,10; no digit appears more than three times in the first ten."""
    if text[0] == "0" or max(text[:10].count(d) for d in set(text[:10])) > 3:
        return False
    product = 10
    for char in text[:10]:
        total = (int(char) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(text[10])


def _fr_nir(text: str) -> bool:
    value = re.sub(r"\s", "", text).upper()
    body, key = value[:13], int(value[13:])
    body = body.replace("2A", "19").replace("2B", "18")
    return 97 - int(body) % 97 == key


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _es_dni(text: str) -> bool:
    value = text.upper()
    number = str("XYZ".index(value[0])) + value[1:8] if value[0] in "XYZ" else value[:8]
    return _DNI_LETTERS[int(number) % 23] == value[8]


def _br_cpf(text: str) -> bool:
    number = _digits(text)
    if len(set(number)) == 1:
        return False
    for length in (9, 10):
        total = sum(
            int(d) * w for d, w in zip(number[:length], range(length + 1, 1, -1), strict=True)
        )
        if (total * 10) % 11 % 10 != int(number[length]):
            return False
    return True


_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _cn_resident_id(text: str) -> bool:
    total = sum(int(d) * w for d, w in zip(text[:17], _CN_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == text[17].upper()


def _tw_national_id(text: str) -> bool:
    letters = "ABCDEFGHJKLMNPQRSTUVXYWZIO"  # A=10 ... O=35, in the official order
    code = letters.index(text[0].upper()) + 10
    digits = [code // 10, code % 10, *map(int, text[1:])]
    weights = (1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1)
    return sum(d * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def _jp_my_number(text: str) -> bool:
    text = _digits(text)
    base = text[:11]
    total = sum(int(base[10 - n]) * (n + 2 if n < 6 else n - 4) for n in range(11))
    remainder = total % 11
    return (0 if remainder <= 1 else 11 - remainder) == int(text[11])


def _kr_rrn(text: str) -> bool:
    """A valid birth date and sex digit; without the hyphen, the check digit too (numbers
    issued since October 2020 have none, so the hyphenated form is enough)."""
    number = _digits(text)
    month, day, sex = int(number[2:4]), int(number[4:6]), number[6]
    if not (1 <= month <= 12 and 1 <= day <= 31 and sex in "12345678"):
        return False
    if "-" in text:
        return True
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    total = sum(int(d) * w for d, w in zip(number[:12], weights, strict=True))
    return (11 - total % 11) % 10 == int(number[12])


def _il_teudat_zehut(text: str) -> bool:
    return luhn_valid(text.zfill(9)) and int(text) > 0


def _sa_national_id(text: str) -> bool:
    return luhn_valid(text)


def _ae_emirates_id(text: str) -> bool:
    return luhn_valid(_digits(text))


def _ru_snils(text: str) -> bool:
    number = _digits(text)
    if int(number[:9]) <= 1_001_998:  # the checksum applies from 001-001-999 on
        return False
    total = sum(int(d) * w for d, w in zip(number[:9], range(9, 0, -1), strict=True))
    check = total if total < 100 else (0 if total in (100, 101) else total % 101)
    return (0 if check == 100 else check) == int(number[9:])


def _phone(text: str) -> bool:
    return 8 <= len(_digits(text)) <= 15


def _phone_national(text: str) -> bool:
    # At least ten digits: a date written 05.03.2024 is not a phone number.
    return 10 <= len(_digits(text)) <= 13


@dataclass(frozen=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] = lambda text: True
    # Two spellings of one value get one placeholder: the value compared without separators.
    normalise: Callable[[str], str] = field(default=lambda text: re.sub(r"[\s.\-()/]", "", text))


def _p(pattern: str) -> re.Pattern[str]:
    # Not some groups of a longer number (an IBAN or a card whose check failed).
    return re.compile(f"{_L}(?<![0-9][ .-])(?:{pattern}){_R}(?![ .-][0-9])")


# In order: a span taken by one is not looked at by the next (an IBAN's digits are no phone).
DETECTORS: tuple[Detector, ...] = (
    Detector(
        "EMAIL",
        re.compile(
            r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+",
            re.ASCII,
        ),
        normalise=str.lower,
    ),
    Detector("IBAN", _p(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?"), _iban),
    Detector(
        "CARD",
        _p(
            r"[0-9]{13,19}|[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,4}"
            r"|[0-9]{4}([ -])[0-9]{6}\2[0-9]{4,5}"  # American Express, Diners
        ),
        _card,
    ),
    Detector("NATIONAL_ID", _p(r"[0-9]{17}[0-9Xx]"), _cn_resident_id),  # China
    Detector("NATIONAL_ID", _p(r"[A-Za-z][12][0-9]{8}"), _tw_national_id),  # Taiwan
    Detector("NATIONAL_ID", _p(r"[0-9]{3}-[0-9]{2}-[0-9]{4}"), _us_ssn),  # United States
    Detector(  # France (NIR: sex, year, month, department, commune, order, key)
        "NATIONAL_ID",
        _p(r"[12] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}"),
        _fr_nir,
    ),
    Detector("NATIONAL_ID", _p(r"[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}"), _br_cpf),  # Brazil
    Detector("NATIONAL_ID", _p(r"[0-9]{3}-[0-9]{3}-[0-9]{3}[ -]?[0-9]{2}"), _ru_snils),  # Russia
    Detector("NATIONAL_ID", _p(r"[0-9]{11}"), _de_steuer_id),  # Germany (Steuer-ID)
    Detector("NATIONAL_ID", _p(r"[0-9]{11}"), _ru_snils),  # Russia, without separators
    Detector("NATIONAL_ID", _p(r"[0-9]{6}-?[1-8][0-9]{6}"), _kr_rrn),  # Korea
    Detector("NATIONAL_ID", _p(r"[0-9]{4} ?[0-9]{4} ?[0-9]{4}"), _jp_my_number),  # Japan
    Detector("NATIONAL_ID", _p(r"784-?[0-9]{4}-?[0-9]{7}-?[0-9]"), _ae_emirates_id),  # UAE
    Detector("NATIONAL_ID", _p(r"[12][0-9]{9}"), _sa_national_id),  # Saudi Arabia
    Detector("NATIONAL_ID", _p(r"[0-9]{8}[A-Za-z]|[XYZxyz][0-9]{7}[A-Za-z]"), _es_dni),  # Spain
    Detector("NATIONAL_ID", _p(r"[0-9]{9}"), _il_teudat_zehut),  # Israel
    Detector(  # international: + or 00 and a country code
        "PHONE",
        _p(
            r"(?<![+])(?:\+|00)[1-9][0-9]{0,2}[ .-]?(?:\(0?[0-9]{1,4}\)[ .-]?)?"
            r"[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,4}"
        ),
        _phone,
    ),
    Detector(  # national, with a trunk 0 and separators: 030 1234567, 090-1234-5678
        "PHONE",
        _p(r"\(?0[0-9]{1,4}\)?[ .-][0-9]{2,4}(?:[ .-][0-9]{2,4}){1,3}"),
        _phone_national,
    ),
    Detector(  # North America, Brazil, a Chinese mobile written in one piece
        "PHONE",
        _p(
            r"\([0-9]{3}\) ?[0-9]{3}-[0-9]{4}|[0-9]{3}-[0-9]{3}-[0-9]{4}"
            r"|\([1-9][0-9]\) ?9?[0-9]{4}-[0-9]{4}|1[3-9][0-9]{9}"
        ),
        _phone,
    ),
)

PLACEHOLDER = re.compile(r"\[(EMAIL|IBAN|CARD|NATIONAL_ID|PHONE)_([0-9]{1,4})\]")
# The longest placeholder ([NATIONAL_ID_9999]): a tail of a reply shorter than this that
# could begin one is held back until the next piece.
_PLACEHOLDER_MAX = 18
_PLACEHOLDER_PREFIX = re.compile(r"\[[A-Z_]*[0-9]{0,4}\Z")


class PiiMasker:
    """One per prompt: the same value gets the same placeholder in every turn, numbered in the
    order values first appear, so a conversation's turns mask identically in every prompt."""

    def __init__(self) -> None:
        self._placeholders: dict[tuple[str, str], str] = {}
        self._numbers: dict[str, int] = {}
        # Placeholder -> the text it stands for (as first written).
        self.originals: dict[str, str] = {}

    def _placeholder(self, kind: str, value: str, normalised: str) -> str:
        key = (kind, normalised)
        found = self._placeholders.get(key)
        if found is None:
            self._numbers[kind] = self._numbers.get(kind, 0) + 1
            found = f"[{kind}_{self._numbers[kind]}]"
            self._placeholders[key] = found
            self.originals[found] = value
        return found

    def mask(self, text: str) -> str:
        # Masked spans become NUL-delimited tokens while later detectors run, so that their
        # digits are not matched again; the placeholders go in at the end.
        taken: list[str] = []

        for detector in DETECTORS:

            def replace(match: re.Match[str], detector: Detector = detector) -> str:
                value = match.group(0)
                if not detector.valid(value):
                    return value
                taken.append(self._placeholder(detector.kind, value, detector.normalise(value)))
                return f"\0{len(taken) - 1}\0"

            text = detector.pattern.sub(replace, text)
        return re.sub(r"\0([0-9]+)\0", lambda m: taken[int(m.group(1))], text) if taken else text


class PlaceholderRestorer:
    """Feed it the reply's pieces in order: placeholders the model wrote come out as the
    originals, also when one is split across pieces (a partial "[EM" tail waits)."""

    def __init__(self, originals: dict[str, str]) -> None:
        self._originals = originals
        self._held = ""

    def _restore(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self._originals.get(m.group(0), m.group(0)), text)

    def feed(self, text: str) -> str:
        if not self._originals:
            return text
        text = self._held + text
        self._held = ""
        start = text.rfind("[")
        if (
            start != -1
            and len(text) - start < _PLACEHOLDER_MAX
            and _PLACEHOLDER_PREFIX.match(text, start)
        ):
            text, self._held = text[:start], text[start:]
        return self._restore(text)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._restore(held)
