"""Replies in the visitor's language: detected per message, the conversation's when unsure."""

from __future__ import annotations

import pytest
from django.conf import settings

from chat.language import reply_language

LANGUAGES = [code for code, _name in settings.LANGUAGES]

LONG = {
    "en": "How do I reset my password? I never received the email with the link.",
    "zh-hans": "我忘记了密码，怎么重新设置？我一直没有收到带链接的邮件。",
    "zh-hant": "我忘記了密碼，要怎麼重新設定？我一直沒有收到帶連結的郵件。",
    "ja": "パスワードを忘れてしまいました。どうやって再設定すればいいですか？",
    "ko": "비밀번호를 잊어버렸어요. 어떻게 재설정할 수 있나요? 링크가 담긴 메일을 받지 못했어요.",
    "ar": "نسيت كلمة المرور الخاصة بي، كيف يمكنني إعادة تعيينها؟ لم تصلني الرسالة.",
    "he": "שכחתי את הסיסמה שלי, איך אפשר לאפס אותה? לא קיבלתי את המייל עם הקישור.",
    "es": "Olvidé mi contraseña, ¿cómo puedo restablecerla? No recibí el correo con el enlace.",
    "de": "Ich habe mein Passwort vergessen. Wie kann ich es zurücksetzen? Die E-Mail kam nie an.",
    "fr": "J'ai oublié mon mot de passe, comment le réinitialiser ? Je n'ai jamais reçu le lien.",
    "pt-br": "Esqueci minha senha, como faço para redefinir? Não recebi o e-mail com o link.",
    "ru": "Я забыл пароль. Как его сбросить? Письмо со ссылкой так и не пришло.",
}

SHORT_BILLING = {
    "en": "Refund please? My invoice shows two charges.",
    "zh-hans": "请问退款要多久？",
    "zh-hant": "請問退款要多久？",
    "ja": "返金はいつですか？",
    "ko": "환불은 언제 되나요?",
    "ar": "متى يتم استرداد المبلغ؟",
    "he": "מתי אקבל את ההחזר?",
    "es": "¿Cuándo llega mi reembolso?",
    "de": "Wann kommt meine Rückerstattung?",
    "fr": "Quand arrive mon remboursement ?",
    "pt-br": "Quando chega meu reembolso?",
    "ru": "Когда вернут деньги?",
}

# Two-word messages: too short for statistics.
TWO_WORDS = {
    "en": "thanks again",
    "zh-hans": "谢谢",
    "zh-hant": "謝謝",
    "ja": "ありがとう",
    "ko": "감사합니다",
    "ar": "شكرا جزيلا",
    "he": "תודה רבה",
    "es": "muchas gracias",
    "de": "danke schön",
    "fr": "merci beaucoup",
    "pt-br": "muito obrigado",
    "ru": "спасибо большое",
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("conversation_language", ["en", "fr", "ja", "zh-hant", "ar", "ru"])
def test_long_messages_are_answered_in_their_own_language(
    language: str, conversation_language: str
) -> None:
    text = LONG[language]
    assert reply_language(text=text, conversation_language=conversation_language) == language


@pytest.mark.parametrize("language", LANGUAGES)
def test_short_questions_are_answered_in_their_own_language(language: str) -> None:
    conversation_language = "ko" if language != "ko" else "en"
    text = SHORT_BILLING[language]
    assert reply_language(text=text, conversation_language=conversation_language) == language


@pytest.mark.parametrize("language", LANGUAGES)
def test_two_words_in_the_conversation_language_keep_it(language: str) -> None:
    assert reply_language(text=TWO_WORDS[language], conversation_language=language) == language


@pytest.mark.parametrize(
    ("text", "conversation_language"),
    [
        ("merci beaucoup", "es"),  # could be any Latin-script language: stay
        ("danke schön", "en"),
        ("thanks again", "pt-br"),
        ("muchas gracias", "de"),
        ("ok", "fr"),
        ("了解", "ja"),  # kanji only: Japanese is as likely as Chinese
        ("你好", "zh-hant"),  # characters shared by both Chinese scripts
        ("你好", "zh-hans"),
    ],
)
def test_unsure_short_messages_keep_the_conversation_language(
    text: str, conversation_language: str
) -> None:
    assert reply_language(text=text, conversation_language=conversation_language) == (
        conversation_language
    )


@pytest.mark.parametrize(
    ("language", "conversation_language"),
    [
        ("ru", "en"),
        ("ar", "fr"),
        ("he", "en"),
        ("ko", "ja"),
        ("ja", "en"),
        ("zh-hans", "zh-hant"),  # 谢谢 is written only in Simplified Chinese
        ("zh-hant", "zh-hans"),
        ("zh-hant", "en"),
    ],
)
def test_short_messages_in_a_script_that_rules_out_the_conversation_language(
    language: str, conversation_language: str
) -> None:
    text = TWO_WORDS[language]
    assert reply_language(text=text, conversation_language=conversation_language) == language


@pytest.mark.parametrize("text", ["", "   ", "42", "🙂👍", "https://example.com/a/b"])
def test_messages_without_words_keep_the_conversation_language(text: str) -> None:
    assert reply_language(text=text, conversation_language="de") == "de"


def test_regional_conversation_language_is_normalised() -> None:
    assert reply_language(text="ok", conversation_language="pt-PT") == "pt-br"
    assert reply_language(text="ok", conversation_language="xx") == settings.LANGUAGE_CODE
