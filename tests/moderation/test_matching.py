"""Word lists and regular expressions matched across scripts, and the streaming moderator."""

from __future__ import annotations

import pytest

from moderation.matching import Rule, find, masked, regex_compile, words_pattern
from moderation.streaming import ReplyModerator


def _words(*words: str, action: str = "mask") -> Rule:
    built = words_pattern(words)
    assert built is not None
    pattern, longest = built
    return Rule(rule_id=1, action=action, pattern=pattern, longest=longest)


def _regex(pattern: str, action: str = "mask") -> Rule:
    return Rule(rule_id=2, action=action, pattern=regex_compile(pattern), longest=None)


def _found(rule: Rule, text: str) -> list[str]:
    return [text[m.start : m.end] for m in find([rule], text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Our class starts at nine.", []),
        ("Don't be an ass.", ["ass"]),
        ("ASS!", ["ASS"]),
        ("passion, bass, assert, ass_hat, ass2", []),
        ("你是ass吗", ["ass"]),  # next to Chinese characters it is still a word of its own
    ],
)
def test_english_words_match_whole_words_only(text: str, expected: list[str]) -> None:
    assert _found(_words("ass"), text) == expected


def test_german_words_fold_case_and_sharp_s_but_keep_compounds() -> None:
    rule = _words("Hölle", "Straße")
    text = "HÖLLE! Das Höllental liegt an der STRASSE, nicht in der Straßenbahn."
    assert _found(rule, text) == ["HÖLLE", "STRASSE"]
    assert masked(text, find([rule], text)).startswith("***! Das Höllental liegt an der ***,")


def test_chinese_japanese_korean_and_thai_words_match_inside_text() -> None:
    rule = _words("坏蛋", "バカ", "바보", "โง่")
    assert _found(rule, "你是个大坏蛋吗？") == ["坏蛋"]
    assert _found(rule, "このバカな質問") == ["バカ"]
    assert _found(rule, "너는바보야") == ["바보"]
    assert _found(rule, "คุณโง่มาก") == ["โง่"]
    assert _found(rule, "好人，良い質問") == []


def test_arabic_ignores_diacritics_tatweel_and_letter_forms() -> None:
    rule = _words("كلمة")
    assert _found(rule, "هذه كَلِمَة سيئة") == ["كَلِمَة"]
    assert _found(rule, "هذه كلـمة") == ["كلـمة"]
    assert _found(rule, "هذه كلمه") == ["كلمه"]  # teh marbuta written as heh
    assert _found(rule, "الكلمات") == []  # another word


def test_hebrew_ignores_points() -> None:
    assert _found(_words("שלום"), "אמרתי שָׁלוֹם לכולם") == ["שָׁלוֹם"]


def test_fullwidth_and_phrases_normalise() -> None:
    rule = _words("free money")
    assert _found(rule, "Get ＦＲＥＥ   money now") == ["ＦＲＥＥ   money"]
    assert _found(rule, "free moneybox") == []


def test_regex_rule_runs_on_normalised_text_ignoring_case() -> None:
    rule = _regex(r"\b\d{4}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b|v[i1]agra")
    text = "Buy VIAGRA or V1agra, card 4111-1111-1111-1111"
    assert masked(text, find([rule], text)) == "Buy *** or ***, card ***"


def test_slow_regex_gives_up_instead_of_hanging() -> None:
    rule = Rule(rule_id=3, action="block", pattern=regex_compile(r"(a|aa)+$"), longest=None)
    assert find([rule], "a" * 60 + "b") == []


def test_first_listed_match_wins_and_matches_do_not_overlap() -> None:
    rule = _words("bad", "bad word")
    assert _found(rule, "a bad word here") == ["bad word"]


# --- streaming --------------------------------------------------------------------------------
def _stream(moderator: ReplyModerator, pieces: list[str]) -> str:
    return "".join(moderator.feed(piece) for piece in pieces) + moderator.flush()


def test_word_split_across_pieces_is_masked_before_it_is_shown() -> None:
    moderator = ReplyModerator((_words("darn"),))
    shown = [moderator.feed(piece) for piece in ["That is da", "rn", " good, da", "rnation!"]]
    assert "da" not in shown[0][-2:]  # held back: it may be the start of the word
    assert "".join(shown) + moderator.flush() == "That is *** good, darnation!"
    # The hit log keeps the original words (the excerpt: what had streamed by then).
    assert [note.excerpt[:17] for note in moderator.notes] == ["That is darn good"]


def test_word_at_the_end_is_decided_only_when_the_next_piece_comes() -> None:
    moderator = ReplyModerator((_words("ass"),))
    assert _stream(moderator, ["You can ass", "ert it"]) == "You can assert it"
    assert moderator.notes == []
    moderator = ReplyModerator((_words("ass"),))
    assert _stream(moderator, ["You ass"]) == "You ***"


def test_blocking_word_stops_the_stream_before_it_is_shown() -> None:
    moderator = ReplyModerator((_words("secret plan", action="block"),))
    shown = _stream(moderator, ["Here is the long answer you asked for: our secr", "et plan is"])
    assert "secr" not in shown and moderator.blocked
    assert moderator.feed(" more text") == ""
    assert "secret plan" in moderator.notes[0].excerpt


def test_without_rules_pieces_pass_through_unchanged() -> None:
    moderator = ReplyModerator(())
    assert [moderator.feed(p) for p in ["Hel", "lo"]] == ["Hel", "lo"]
    assert moderator.flush() == "" and not moderator.blocked


def test_refusal_blocks_and_notes_the_model_as_source() -> None:
    moderator = ReplyModerator(())
    moderator.feed("I can")
    moderator.refuse()
    assert moderator.blocked and moderator.notes[0].source == "model"
