"""Replies stay grounded and in the visitor's language: the reply filter (scripts, Traditional
Chinese), answers built from the knowledge alone, and the honest no-knowledge reply."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.utils import translation

from chat.llm.extractive import extractive_answer
from chat.llm.fake import FakeBackend
from chat.models import Message
from chat.reply_text import NoteFilter, ReplyFilter, echoes_question, loop_cut, written_in
from tests.chat.wsclient import connect, hello, receive_until, send, text_of
from tests.knowledge.test_search import ARTICLES as SEARCH_ARTICLES

pytestmark = pytest.mark.django_db(transaction=True)

# The password and refund articles of the search tests (and the others, as distractors).
ARTICLES = [
    dict(a, url=a.get("url", f"https://help.example/en/{a['id']}")) for a in SEARCH_ARTICLES
]


def _import() -> None:
    from knowledge.services import articles_import

    articles_import(lines=[json.dumps(a, ensure_ascii=False) for a in ARTICLES])


async def _ask(locale: str, text: str):  # type: ignore[no-untyped-def]
    communicator = await connect()
    await hello(communicator, locale=locale)
    await send(communicator, {"type": "message", "client_id": "g1", "text": text})
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()
    done = frames[-1]
    return text_of(frames, done["message_id"]), done


def test_traditional_chinese_is_converted_across_pieces() -> None:
    shown = ReplyFilter("zh-hant")
    pieces = ["您好，请在设置中", "重置密码。头", "发"]
    text = "".join(shown.feed(piece) for piece in pieces) + shown.flush()
    assert text == "您好，請在設置中重置密碼。頭髮"


def test_letters_of_a_foreign_script_are_dropped_but_latin_and_digits_stay() -> None:
    shown = ReplyFilter("ko")
    text = shown.feed("비밀번호를 재设置하려면 Settings에서 2단계를") + shown.flush()
    assert text == "비밀번호를 재하려면 Settings에서 2단계를"
    hebrew = ReplyFilter("he")
    assert hebrew.feed("שלום мир عالم world") + hebrew.flush() == "שלום   world"


def test_verbatim_text_is_not_filtered() -> None:
    shown = ReplyFilter("ko")
    assert shown.feed("- 重置密码 (https://h/pw)", verbatim=True) == "- 重置密码 (https://h/pw)"


def test_an_extractive_answer_is_in_the_visitors_language_with_links() -> None:
    knowledge = [
        {
            "title": "Resetting your password",
            "url": "https://h/pw",
            "text": "Click.",
            "language": "en",
        },
        {
            "title": "איפוס סיסמה",
            "url": "https://h/he/pw",
            "text": "לחצו על שכחתי סיסמה.",
            "language": "he",
        },
    ]
    text = extractive_answer(language="he", knowledge=knowledge)
    with translation.override("he"):
        from django.utils.translation import gettext

        assert text.startswith(gettext("These articles from our help centre answer your question:"))
    assert "- Resetting your password (https://h/pw)" in text
    assert "Click." not in text  # an English excerpt is not quoted in a Hebrew answer
    assert "לחצו על שכחתי סיסמה." in text


async def test_a_hebrew_question_is_answered_from_the_knowledge_without_the_model(
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.CHAT_EXTRACTIVE_LANGUAGES = ("he",)
    await database_sync_to_async(_import)()
    # Hebrew is matched by title only (docs/knowledge.md): the question names the article.
    text, done = await _ask("he", "איפוס הסיסמה שלך, בבקשה")
    assert FakeBackend.requests == []
    assert done["status"] == "complete"
    assert "Resetting your password (https://help.example/en/pw)" in text
    assert [c["url"] for c in done["citations"]] == ["https://help.example/en/pw"]
    with translation.override("he"):
        from django.utils.translation import gettext

        assert gettext("These articles from our help centre answer your question:") in text


async def test_a_question_with_no_relevant_knowledge_gets_the_honest_reply(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_NO_KNOWLEDGE_REPLY = "template"
    await database_sync_to_async(_import)()
    text, done = await _ask("pt-br", "O serviço está fora do ar agora?")
    assert FakeBackend.requests == []  # nothing was generated, so nothing was invented
    assert done["citations"] == []
    with translation.override("pt-br"):
        from django.utils.translation import gettext

        assert text == gettext(
            "I could not find an answer to this in our help centre. Please contact our "
            "support team, and a person will help you."
        )


async def test_a_greeting_still_goes_to_the_model(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_NO_KNOWLEDGE_REPLY = "template"
    await database_sync_to_async(_import)()
    text, done = await _ask("pt-br", "Olá!")
    assert len(FakeBackend.requests) == 1 and "Olá!" in text


async def test_only_relevant_articles_are_given_and_cited(settings) -> None:  # type: ignore[no-untyped-def]
    await database_sync_to_async(_import)()
    _text, done = await _ask("fr", "Comment réinitialiser mon mot de passe ?")
    assert [c["url"] for c in done["citations"]] == ["https://help.example/en/pw"]
    prompt = FakeBackend.requests[-1].messages[-1].content
    assert "Forgot password" in prompt and "refund" not in prompt


async def test_generation_stops_where_the_model_would_echo_the_prompts_markers() -> None:
    from chat.prompts import PROMPT_MARKERS

    _text, _done = await _ask("en", "hello there")
    assert set(PROMPT_MARKERS) <= set(FakeBackend.requests[-1].sampling.stop)


def test_a_reply_that_only_repeats_the_question_is_an_echo() -> None:
    assert echoes_question("部署網站  部署網站  部署網站", "部署網站")
    assert echoes_question("Ein anderes Mikrofon verwenden   ", "Ein anderes Mikrofon verwenden")
    assert echoes_question("Reset my pass", "Reset my password?")  # cut off mid-repeat
    assert not echoes_question("Yes", "Is the service down?")
    assert not echoes_question("Click Forgot password.", "Reset my password?")
    assert not echoes_question("", "Reset my password?")


def test_a_reply_that_restates_the_question_in_its_words_is_an_echo() -> None:
    # Seen from the packaged model (bench/answers.py): the question's words, one short word more.
    assert echoes_question("Sí, necesito software antivirus.", "¿Necesito software antivirus?")
    assert echoes_question("Почему планшет не распознан?", "Почему мой планшет не распознан?")
    assert echoes_question(
        "Ja, benötige ich Anti-Virus-Software?", "Benötige ich Anti-Virus-Software?"
    )
    # An answer says something the question did not.
    assert not echoes_question("Yes, open Settings.", "Can I turn off location?")
    assert not echoes_question("Sí, necesito ayuda urgente.", "¿Necesito software antivirus?")
    assert not echoes_question("Nein, danke", "Benötige ich Anti-Virus-Software?")


async def test_an_echoed_question_is_asked_again_and_the_second_answer_replaces_it() -> None:
    await database_sync_to_async(_import)()
    question = "Wie setze ich mein Passwort zurück?"
    answer = "Klicken Sie auf der Anmeldeseite auf „Passwort vergessen“."
    FakeBackend.script.extend([f"{question} {question}", answer])
    text, done = await _ask("de", question)
    assert done["status"] == "complete" and done["finish_reason"] == "echo"
    assert text == answer
    first, second = FakeBackend.requests
    # The second request is the first, then the echo and what was wrong with it.
    assert list(second.messages[: len(first.messages)]) == list(first.messages)
    assert second.messages[-2].role == "assistant" and question in second.messages[-2].content
    assert second.messages[-1].role == "user"
    assert "only repeats my question" in second.messages[-1].content
    assert "German" in second.messages[-1].content
    stored = await database_sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert stored.text == answer and stored.finish_reason == "echo"


async def test_a_second_answer_loses_a_first_line_that_restates_the_question() -> None:
    await database_sync_to_async(_import)()
    question = "Wie setze ich mein Passwort zurück?"
    answer = "Klicken Sie auf der Anmeldeseite auf „Passwort vergessen“."
    FakeBackend.script.extend([question, f"Ja, {question}\n\n{answer}"])
    text, done = await _ask("de", question)
    assert done["finish_reason"] == "echo" and text == answer


async def test_an_echoed_question_is_replaced_by_the_answer_from_the_excerpts() -> None:
    await database_sync_to_async(_import)()
    question = "Wie setze ich mein Passwort zurück?"
    FakeBackend.script.extend([f"{question} {question}", f"Ja, {question}"])  # twice an echo
    text, done = await _ask("de", question)
    assert done["status"] == "complete" and done["finish_reason"] == "echo"
    assert len(FakeBackend.requests) == 2
    assert question not in text
    assert "Resetting your password (https://help.example/en/pw)" in text
    stored = await database_sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert stored.text == text and stored.finish_reason == "echo"


async def test_a_cancel_while_the_model_answers_again_stops_it(settings) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    settings.LLM_FAKE_TOKEN_MS = 50
    await database_sync_to_async(_import)()
    question = "Wie setze ich mein Passwort zurück?"
    FakeBackend.script.extend([question, "Klicken Sie auf „Passwort vergessen“. " * 20])
    communicator = await connect()
    await hello(communicator, locale="de")
    await send(communicator, {"type": "message", "client_id": "g1", "text": question})
    for _wait in range(200):  # the echo is over and the second answer is being written
        if len(FakeBackend.requests) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(FakeBackend.requests) == 2
    await send(communicator, {"type": "cancel"})
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()
    done = frames[-1]
    assert done["status"] == "cancelled"
    stored = await database_sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert stored.status == Message.Status.CANCELLED
    assert stored.text == text_of(frames, done["message_id"]) == question  # what was shown


def test_a_loop_is_cut_after_its_first_time() -> None:
    text = "4. OS Name, OS Type, " + "GNOME Version, " * 12 + "GNOME Ver"
    cut = loop_cut(text)
    assert cut is not None and text[:cut] == "4. OS Name, OS Type, GNOME Version"
    assert loop_cut("Open Settings. " * 3) is None  # three times is not yet a loop
    assert loop_cut("Title\n" + "=" * 60) is None  # a rule is not a phrase
    assert loop_cut("| --- | --- | --- | --- | --- | --- |") is None
    assert loop_cut("Click Forgot password, then follow the link in the e-mail.") is None


def test_a_reply_is_judged_in_its_language_code_and_links_aside() -> None:
    english = "(1) My computer will not turn on <https://h/x>\nCheck that the monitor is on."
    assert not written_in(english, "ja")
    assert written_in("1. Activities Overview를 열고, System을 검색합니다. 그리고 About.", "ko")
    assert written_in("根據您提供的知識庫 excerpts 給出的步驟：識別違規行爲", "zh-hant")
    assert written_in("Klicken Sie auf „Passwort vergessen“ und folgen Sie dem Link.", "de")
    assert not written_in("Click Forgot password on the sign-in page, then the link.", "de")
    assert written_in("```sh\ngit clone https://x/y.git && cd y && make install\n```\nOK", "de")
    assert written_in("OK", "de")  # too short to tell


def _notes_dropped(pieces: list[str]) -> str:
    notes = NoteFilter()
    return "".join(notes.feed(piece) for piece in pieces) + notes.flush()


def test_a_line_wholly_in_brackets_is_dropped_however_it_streams() -> None:
    # Seen from the packaged model (bench/answers.py): the prompt's note echoed at the end.
    text = "まず、モニターを確認してください。\n\n[Answer from the excerpts above, in Japanese.]"
    for cut in range(1, len(text)):
        assert _notes_dropped([text[:cut], text[cut:]]) == "まず、モニターを確認してください。\n\n"
    note = "[Используйте информацию из excerpts. Не повторяйте вопрос.]\nДалее."
    assert _notes_dropped(list(note)) == "\nДалее."


def test_links_and_numbered_lines_in_brackets_are_shown() -> None:
    text = "[Settings](https://help.example/s) opens it.\n[1] Open Settings\nSee [this]."
    assert _notes_dropped([text[:5], text[5:30], text[30:]]) == text
    assert (
        _notes_dropped(["[Settings](https://help.example/s)"])
        == "[Settings](https://help.example/s)"
    )


async def test_the_prompts_note_echoed_at_the_end_of_a_reply_is_not_shown() -> None:
    await database_sync_to_async(_import)()
    answer = "Klicken Sie auf der Anmeldeseite auf „Passwort vergessen“ und folgen Sie dem Link."
    FakeBackend.script.append(f"{answer}\n\n[Antworten Sie aus den Auszügen, auf Deutsch.]")
    text, done = await _ask("de", "Wie setze ich mein Passwort zurück?")
    assert text.strip() == answer and "Auszügen" not in text
    stored = await database_sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert stored.text == text


async def test_a_reply_that_loops_is_stopped_and_says_it_once() -> None:
    await database_sync_to_async(_import)()
    FakeBackend.script.append("Open Settings, then " + "GNOME Version, " * 40)
    text, done = await _ask("en", "Where do I see the version?")
    assert done["status"] == "complete" and done["finish_reason"] == "loop"
    assert text == "Open Settings, then GNOME Version,"
    stored = await database_sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert stored.text == text and stored.finish_reason == "loop"


async def test_a_loop_that_leaves_next_to_nothing_gives_the_answer_from_the_excerpts() -> None:
    await database_sync_to_async(_import)()
    FakeBackend.script.append("Sie können " + "das Passwort zurücksetzen, " * 10)
    text, done = await _ask("de", "Wie setze ich mein Passwort zurück?")
    assert done["finish_reason"] == "loop" and len(FakeBackend.requests) == 1
    assert "Resetting your password (https://help.example/en/pw)" in text
    assert "zurücksetzen" not in text


async def test_a_second_answer_in_another_language_leaves_the_answer_from_the_excerpts() -> None:
    await database_sync_to_async(_import)()
    question = "Wie setze ich mein Passwort zurück?"
    english = "Click Forgot password on the sign-in page; the reset link expires after an hour."
    FakeBackend.script.extend([question, english])
    text, done = await _ask("de", question)
    assert done["finish_reason"] == "echo" and len(FakeBackend.requests) == 2
    assert english not in text
    assert "Resetting your password (https://help.example/en/pw)" in text


async def test_an_answer_in_another_language_is_asked_again_in_the_visitors() -> None:
    await database_sync_to_async(_import)()
    question = "Wie setze ich mein Passwort zurück?"
    english = "Click Forgot password on the sign-in page; the reset link expires after an hour."
    answer = "Klicken Sie auf der Anmeldeseite auf „Passwort vergessen“ und folgen Sie dem Link."
    FakeBackend.script.extend([english, answer])
    text, done = await _ask("de", question)
    assert done["status"] == "complete" and done["finish_reason"] == "language"
    assert text == answer
    first, second = FakeBackend.requests
    assert list(second.messages[: len(first.messages)]) == list(first.messages)
    assert second.messages[-2].role == "assistant" and second.messages[-2].content == english
    assert "That is not in German" in second.messages[-1].content
    stored = await database_sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert stored.text == answer and stored.finish_reason == "language"


async def test_an_answer_in_another_language_twice_leaves_the_answer_from_the_excerpts() -> None:
    await database_sync_to_async(_import)()
    english = "Click Forgot password on the sign-in page; the reset link expires after an hour."
    FakeBackend.script.extend([english, english])
    text, done = await _ask("de", "Wie setze ich mein Passwort zurück?")
    assert done["finish_reason"] == "language" and len(FakeBackend.requests) == 2
    assert english not in text
    assert "Resetting your password (https://help.example/en/pw)" in text


async def test_an_answer_in_the_visitors_language_with_english_names_stands() -> None:
    await database_sync_to_async(_import)()
    answer = "Öffnen Sie „Account settings“ und klicken Sie dort auf „Forgot password“, bitte."
    FakeBackend.script.append(answer)
    text, done = await _ask("de", "Wie setze ich mein Passwort zurück?")
    assert done["finish_reason"] == "stop" and text == answer
    assert len(FakeBackend.requests) == 1


async def test_the_language_check_can_be_switched_off(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_REPLY_LANGUAGE_CHECK = False
    await database_sync_to_async(_import)()
    english = "Click Forgot password on the sign-in page; the reset link expires after an hour."
    FakeBackend.script.append(english)
    text, done = await _ask("de", "Wie setze ich mein Passwort zurück?")
    assert text == english and len(FakeBackend.requests) == 1


async def test_a_second_answer_that_fails_leaves_the_answer_from_the_excerpts() -> None:
    from chat.llm.base import LLMError

    await database_sync_to_async(_import)()
    question = "Wie setze ich mein Passwort zurück?"
    FakeBackend.script.extend([question, LLMError("engine down", code="engine_down")])
    text, done = await _ask("de", question)
    assert done["status"] == "complete" and done["finish_reason"] == "echo"
    assert "Resetting your password (https://help.example/en/pw)" in text
