"""Prompt assembly keeps the prefix stable: turn N+1 begins with turn N's prompt and reply."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from chat.llm.base import Sampling
from chat.models import DecodingPreset, Message
from chat.prompts import (
    DROP_STEP_TURNS,
    KnowledgeSnippet,
    naive_prompt_build,
    prompt_build,
    system_prompt,
)
from chat.selectors import preset_sampling

KB = {
    1: [KnowledgeSnippet("Reset your password", "https://help.example/reset", "Open Settings.")],
    3: [KnowledgeSnippet("Billing", "https://help.example/billing", "Invoices are monthly.")],
    5: [KnowledgeSnippet("Refunds", "https://help.example/refunds", "Within 30 days.")],
}


def conversation(exchanges: int) -> list[Message]:
    messages: list[Message] = []
    for number in range(exchanges):
        messages.append(
            Message(pk=2 * number + 1, role=Message.Role.USER, text=f"Question {number}?")
        )
        messages.append(
            Message(pk=2 * number + 2, role=Message.Role.ASSISTANT, text=f"Answer {number}.")
        )
    return messages


def test_system_prompt_is_byte_stable_per_language() -> None:
    assert system_prompt(language="en") == system_prompt(language="en")
    assert system_prompt(language="en") != system_prompt(language="zh-hans")
    assert "Simplified Chinese" in system_prompt(language="zh-hans")


def test_knowledge_goes_with_the_newest_user_turn() -> None:
    history = conversation(2)[:3]  # Q0 A0 Q1
    prompt = prompt_build(language="en", history=history, knowledge=KB[3])
    assert [t.role for t in prompt] == ["system", "user", "assistant", "user"]
    assert "help.example" not in prompt[0].content and prompt[1].content == "Question 0?"
    assert prompt[3].content.startswith("Question 1?\n")
    assert "Billing <https://help.example/billing>\nInvoices are monthly." in prompt[3].content


def test_next_prompt_starts_with_previous_prompt_and_reply() -> None:
    messages = conversation(4)
    past = {pk: snippets for pk, snippets in KB.items()}
    previous_prompt = None
    for turn in range(1, 4):
        history = messages[: 2 * turn + 1]  # up to question `turn`
        given = {pk: s for pk, s in past.items() if pk < history[-1].pk}
        prompt = prompt_build(
            language="en",
            history=history,
            knowledge=past.get(history[-1].pk, ()),
            past_knowledge=given,
        )
        if previous_prompt is not None:
            reply = messages[2 * turn - 1]
            assert prompt[: len(previous_prompt) + 1] == [
                *previous_prompt,
                prompt[len(previous_prompt)],
            ]
            assert prompt[len(previous_prompt)].content == reply.text
        previous_prompt = prompt


def test_the_turn_note_asks_for_an_answer_only_when_excerpts_came_with_the_question() -> None:
    from chat.prompts import turn_note

    found = turn_note(
        text="Comment supprimer mon compte ?", conversation_language="fr", knowledge_found=True
    )
    assert found.startswith("[Reply in French.]")
    assert "Do not repeat the question" in found and "in French" in found
    assert "No knowledge-base excerpt" not in found
    missing = turn_note(
        text="Comment supprimer mon compte ?", conversation_language="fr", knowledge_found=False
    )
    assert "Do not repeat the question" not in missing and "No knowledge-base excerpt" in missing
    # Deterministic: the stored turn renders the same bytes in every later prompt.
    assert found == turn_note(
        text="Comment supprimer mon compte ?", conversation_language="fr", knowledge_found=True
    )


def test_naive_layout_changes_the_top_every_turn() -> None:
    messages = conversation(3)
    first = naive_prompt_build(language="en", history=messages[:3], knowledge=KB[3], turn_number=2)
    second = naive_prompt_build(language="en", history=messages[:5], knowledge=KB[5], turn_number=3)
    assert first[0].content != second[0].content


def test_over_budget_old_turns_go_in_large_steps_and_prefix_stays(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_CONTEXT_BUDGET_TOKENS = 2000  # about 24 of these turns
    words = " ".join(["word"] * 60)
    messages: list[Message] = []
    for number in range(30):
        messages.append(
            Message(pk=2 * number + 1, role=Message.Role.USER, text=f"Q{number} {words}")
        )
        messages.append(
            Message(pk=2 * number + 2, role=Message.Role.ASSISTANT, text=f"A{number} {words}")
        )
    firsts = []
    for end in range(3, len(messages), 2):
        prompt = prompt_build(language="en", history=messages[:end])
        assert prompt[1].role == "user"
        firsts.append(prompt[1].content.split()[0])
    changes = sum(1 for a, b in zip(firsts, firsts[1:], strict=False) if a != b)
    # The first kept turn moves by DROP_STEP_TURNS at a time, so it changes rarely.
    assert 1 <= changes <= len(firsts) // 3
    kept_starts = sorted({int(first[1:]) for first in firsts})
    assert all(
        b - a >= DROP_STEP_TURNS // 2 for a, b in zip(kept_starts, kept_starts[1:], strict=False)
    )


def test_budget_is_counted_with_the_given_tokenizer(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_CONTEXT_BUDGET_TOKENS = 300
    history = conversation(12)[:23]
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return 40

    counted_prompt = prompt_build(language="en", history=history, count_tokens=count)
    estimated_prompt = prompt_build(language="en", history=history)
    assert counted, "the model's tokenizer is used"
    assert len(estimated_prompt) == len(history) + 1, "short turns all fit by the estimate"
    assert len(counted_prompt) < len(estimated_prompt), "40 tokens a turn do not"
    assert counted_prompt[-1] == estimated_prompt[-1]


@pytest.mark.django_db
def test_decoding_preset_applies_per_task_and_assistant(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_ASSISTANT_NAME = "Aurora"
    assert preset_sampling(task=DecodingPreset.Task.SUPPORT_ANSWER) == Sampling()
    DecodingPreset.objects.create(
        task=DecodingPreset.Task.SUPPORT_ANSWER, temperature=0.1, max_tokens=300
    )
    DecodingPreset.objects.create(
        assistant="Aurora", task=DecodingPreset.Task.SMALL_TALK, temperature=0.9, stop="END\n\nBYE"
    )
    support = preset_sampling(task=DecodingPreset.Task.SUPPORT_ANSWER)
    assert (support.temperature, support.max_tokens) == (0.1, 300)
    small_talk = preset_sampling(task=DecodingPreset.Task.SMALL_TALK)
    assert small_talk.temperature == 0.9 and small_talk.stop == ("END", "BYE")
    assert preset_sampling(task=DecodingPreset.Task.SMALL_TALK, assistant="Other") == Sampling()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 2.5), ("top_p", 0.0), ("max_tokens", 10_000), ("presence_penalty", -3.0)],
)
def test_decoding_preset_bounds_are_validated(field: str, value: float) -> None:
    preset = DecodingPreset(task=DecodingPreset.Task.SUMMARY, **{field: value})
    with pytest.raises(ValidationError) as caught:
        preset.full_clean()
    assert field in caught.value.message_dict


@pytest.mark.django_db
def test_more_than_four_stop_sequences_are_refused() -> None:
    preset = DecodingPreset(task=DecodingPreset.Task.SUMMARY, stop="a\nb\nc\nd\ne")
    with pytest.raises(ValidationError) as caught:
        preset.full_clean()
    assert "stop" in caught.value.message_dict
