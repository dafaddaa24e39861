"""Tokenizers and language detection on real sentences."""

from __future__ import annotations

import pytest

from knowledge.text import detect_language, tokenize
from knowledge.text.arabic import normalize
from knowledge.text.chinese import get_tokenizer


def test_chinese_is_segmented_into_words_by_jieba() -> None:
    tokens = tokenize("如何重置我的账户密码？", language="zh-hans")
    assert "重置" in tokens
    assert "密码" in tokens
    assert "账户" in tokens
    assert "？" not in tokens


def test_jieba_dictionary_is_loaded_once_per_process() -> None:
    assert get_tokenizer() is get_tokenizer()


def test_chinese_text_keeps_latin_words_folded() -> None:
    assert "northwind" in tokenize("Northwind Cloud 的存储空间", language="zh-hans")


def test_arabic_normalisation_unifies_letter_forms_and_drops_diacritics() -> None:
    assert normalize("إِعَادَةُ") == "اعاده"
    assert normalize("مـــرحبا") == "مرحبا"
    assert normalize("مستشفى") == "مستشفي"


def test_arabic_tokens_match_across_spelling_variants_and_the_article() -> None:
    query = tokenize("كيف أعيد تعيين كلمة المرور؟", language="ar")
    document = tokenize("إعادة تعيين كلمةِ المرورِ من صفحة تسجيل الدخول", language="ar")
    assert "مرور" in query and "مرور" in document
    assert "كلمه" in query and "كلمه" in document


def test_japanese_and_korean_become_cjk_bigrams() -> None:
    assert tokenize("パスワードを再設定", language="ja")[:3] == ["パス", "スワ", "ワー"]
    assert "설정" in tokenize("비밀번호 재설정", language="ko")
    assert "재설" in tokenize("비밀번호 재설정", language="ko")


def test_other_languages_fold_case_and_accents_at_word_boundaries() -> None:
    assert tokenize("Política de REEMBOLSOS: ¿cómo?", language="es", stemmed=False) == [
        "politica",
        "de",
        "reembolsos",
        "como",
    ]
    assert tokenize("Passwort zurücksetzen, E-Mail-Adresse", language="de", stemmed=False) == [
        "passwort",
        "zurucksetzen",
        "e-mail-adresse",
    ]
    assert tokenize("Ёлка и ПАРОЛЬ", language="ru", stemmed=False) == ["елка", "и", "пароль"]
    assert tokenize("don't", language="en", stemmed=False) == ["don't"]


def test_words_of_a_language_snowball_knows_are_followed_by_their_stems() -> None:
    assert tokenize("Passwörter zurücksetzen", language="de") == [
        "passworter",
        "passwort",
        "zurucksetzen",
        "zurucksetz",
    ]
    assert tokenize("Как сбросить пароли", language="ru") == [
        "как",
        "сбросить",
        "сброс",
        "пароли",
        "парол",
    ]
    # A question's inflection finds the article's: both reduce to one stem.
    assert set(tokenize("supprimer", language="fr")) & set(tokenize("supprimé", language="fr"))
    # Names keep their surface form beside the stem, so they match across languages.
    assert "drive" in tokenize("Google Drive synchroniser", language="fr")
    # No stemmer: Japanese, Korean, Hebrew, Chinese, Arabic.
    assert tokenize("Drive", language="he") == ["drive"]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("How do I reset the password of my account?", "en"),
        ("如何重置我的账户密码？", "zh-hans"),
        ("如何重設我的帳號密碼？這個問題請說明。", "zh-hant"),
        ("パスワードを忘れました。どうすればいいですか？", "ja"),
        ("비밀번호를 잊어버렸어요. 어떻게 해야 하나요?", "ko"),
        ("كيف يمكنني إعادة تعيين كلمة المرور الخاصة بي؟", "ar"),
        ("איך אני מאפס את הסיסמה שלי?", "he"),
        ("¿Cómo puedo restablecer la contraseña de mi cuenta?", "es"),
        ("Wie kann ich das Passwort meines Kontos zurücksetzen?", "de"),
        ("Comment puis-je réinitialiser le mot de passe de mon compte ?", "fr"),
        ("Como faço para redefinir a senha da minha conta?", "pt-br"),
        ("Как мне сбросить пароль от моей учётной записи?", "ru"),
    ],
)
def test_language_is_detected_offline(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_text_too_short_to_tell_falls_back_to_the_given_default() -> None:
    assert detect_language("ok", default="es") == "es"
    assert detect_language("1234 !!", default="de") == "de"
