"""The agent inbox in headless Chromium against a real Daphne: an Arabic visitor in the widget,
a German (or Arabic) agent in /inbox/ (docs/inbox.md). The fake backend "translates" into
`[<language>] <text>`, so a translation and its original can be told apart."""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import Conversation, Message
from tests.e2e.conftest import ChatServer, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ASK_FOR_A_PERSON = "أريد التحدث مع موظف"  # "I want to talk to an employee"
THANKS = "شكرا لك"
AGENT_REPLY = "Guten Tag! Ich schaue mir Ihr Konto gleich an."


# --- the visitor's widget -------------------------------------------------------------------
def w(page: Any, selector: str) -> Any:
    return page.locator(f"autoglm-chat >> {selector}")


def visitor_page(new_page: Any, server: ChatServer) -> Any:
    page = new_page(locale="ar")
    page.goto(server.url + "/")
    w(page, ".launch").click()
    w(page, "textarea").wait_for()
    return page


def visitor_says(page: Any, text: str) -> None:
    w(page, "textarea").fill(text)
    w(page, "textarea").press("Enter")


# --- the agent's inbox ----------------------------------------------------------------------
def rows(page: Any) -> Any:
    return page.locator("#list .row")


def wait_connected(page: Any) -> None:
    page.wait_for_function("() => window.AutoGLMInbox && AutoGLMInbox.state().connected")


def open_first_waiting(page: Any) -> None:
    rows(page).first.wait_for()
    rows(page).first.click()
    page.locator("#conv-body").wait_for()
    page.locator("#messages .msg.user").first.wait_for()


def message_texts(page: Any, role: str) -> list[str]:
    texts: list[str] = page.locator(f"#messages .msg.{role} .text").all_inner_texts()
    return texts


def wait_text(page: Any, selector: str, text: str, timeout: float = 15_000) -> None:
    page.locator(selector, has_text=text).first.wait_for(timeout=timeout)


def agent_says(page: Any, text: str) -> None:
    page.locator("#reply").fill(text)
    page.locator("#reply").press("Control+Enter")


def conversation() -> Conversation:
    return Conversation.objects.get()


# --- tests ----------------------------------------------------------------------------------
def test_handoff_claim_and_translated_messages_both_ways_survive_reconnect_and_reload(
    agent_de: Any, chat_server: ChatServer, new_page: Any, agent_page: Any
) -> None:
    agent = agent_page(chat_server, agent_de)
    assert agent.locator("html").get_attribute("lang") == "de"
    assert agent.locator("html").get_attribute("dir") == "ltr"
    wait_connected(agent)
    assert rows(agent).count() == 0

    # The visitor asks for a person in Arabic: the conversation reaches the Waiting queue live
    # (a queue event, no reload), with a sound and the count in the tab's title.
    visitor = visitor_page(new_page, chat_server)
    visitor_says(visitor, ASK_FOR_A_PERSON)
    rows(agent).first.wait_for()
    assert agent.locator('[data-count="waiting"]').inner_text() == "1"
    assert rows(agent).first.locator(".lang").inner_text() == "AR"
    agent.wait_for_function("() => document.title.startsWith('(1) ')")
    agent.wait_for_function("() => AutoGLMInbox.beeps >= 1")
    assert conversation().mode == Conversation.Mode.WAITING
    screenshot(agent, "inbox-queue.png")

    # Open: the visitor's words in German, the original one click away.
    open_first_waiting(agent)
    first = agent.locator("#messages .msg.user").first
    wait_text(agent, "#messages .msg.user .text", f"[de] {ASK_FOR_A_PERSON}")
    first.locator(".toggle").click()
    assert first_text(agent) == ASK_FOR_A_PERSON
    agent.locator("#messages .msg.user").first.locator(".toggle").click()
    assert first_text(agent) == f"[de] {ASK_FOR_A_PERSON}"

    # Claim with the keyboard (focus outside the reply box).
    agent.locator("#conversation").focus()
    agent.keyboard.press("c")
    agent.locator('[data-action="claim"]').wait_for(state="hidden")
    assert conversation().mode == Conversation.Mode.AGENT
    assert conversation().assignee_id == agent_de.pk

    # Agent → visitor: the visitor reads it in Arabic; the agent can see that copy.
    agent_says(agent, AGENT_REPLY)
    wait_text(visitor, "autoglm-chat >> .m.agent .b", f"[ar] {AGENT_REPLY}")
    mine = agent.locator("#messages .msg.agent", has_text=AGENT_REPLY)
    mine.locator(".toggle").wait_for()
    mine.locator(".toggle").click()
    wait_text(agent, "#messages .msg.agent .visitor-copy", f"[ar] {AGENT_REPLY}")

    # The visitor typing shows in the inbox; their next message arrives translated.
    w(visitor, "textarea").fill("ش")
    w(visitor, "textarea").press_sequentially("كرا")
    agent.locator("#typing").wait_for()
    w(visitor, "textarea").fill(THANKS)
    w(visitor, "textarea").press("Enter")
    wait_text(agent, "#messages .msg.user .text", f"[de] {THANKS}")
    agent.locator("#conversation").focus()
    agent.keyboard.press("2")  # the Mine queue, where the claimed conversation now is
    agent.locator('#list .row[aria-current="true"]').wait_for()
    screenshot(agent, "inbox-conversation.png")

    # A private note stays among agents.
    agent.locator("#note-toggle").click()
    agent_says(agent, "Kunde wirkt zufrieden.")
    wait_text(agent, "#messages .msg.note .text", "Kunde wirkt zufrieden.")
    agent.locator("#messages .msg.sending").wait_for(state="detached")  # acknowledged
    assert Message.objects.filter(role=Message.Role.NOTE).count() == 1
    agent.locator("#note-toggle").click()

    # The socket drops and a reply is written meanwhile: it shows as sending, is resent with
    # its client_id after the reconnect, and reaches the visitor once.
    agent.evaluate("AutoGLMInbox.socket().close()")
    agent_says(agent, "Noch etwas?")
    assert agent.locator("#messages .msg.sending", has_text="Noch etwas?").count() == 1
    wait_text(visitor, "autoglm-chat >> .m.agent .b", "[ar] Noch etwas?")
    wait_connected(agent)
    agent.locator("#messages .msg.sending").wait_for(state="detached")
    assert Message.objects.filter(role=Message.Role.AGENT, text="Noch etwas?").count() == 1
    # After the reconnect the conversation still gets live messages.
    visitor_says(visitor, "نعم")
    wait_text(agent, "#messages .msg.user .text", "[de] نعم")

    # A reload reopens the same conversation with its whole history.
    agent.reload()
    wait_connected(agent)
    wait_text(agent, "#messages .msg.user .text", "[de] نعم")
    assert len(message_texts(agent, "user")) == 3
    assert len(message_texts(agent, "agent")) == 2
    assert w(visitor, ".m.agent").count() == 2  # the note never reached the visitor


def first_text(page: Any) -> str:
    text: str = page.locator("#messages .msg.user .text").first.inner_text()
    return text


def test_resolve_asks_the_visitor_for_a_rating_and_hand_back_returns_to_the_bot(
    agent_de: Any, chat_server: ChatServer, new_page: Any, agent_page: Any
) -> None:
    agent = agent_page(chat_server, agent_de)
    wait_connected(agent)
    visitor = visitor_page(new_page, chat_server)
    visitor_says(visitor, ASK_FOR_A_PERSON)
    open_first_waiting(agent)
    agent_says(agent, "Hallo!")  # a message to an unowned conversation claims it
    wait_text(visitor, "autoglm-chat >> .m.agent .b", "[ar] Hallo!")
    agent.locator('[data-action="claim"]').wait_for(state="hidden")

    # Resolve (e): the visitor is asked for a rating; the conversation moves to Resolved.
    agent.locator("#conversation").focus()
    agent.keyboard.press("e")
    w(visitor, ".stars button").first.wait_for()
    agent.locator('[data-action="reopen"]').wait_for()
    assert conversation().status == Conversation.Status.CLOSED
    agent.wait_for_function(
        "() => document.querySelector('[data-count=\"resolved\"]').textContent === '1'"
    )

    # Reopen, then hand back: the assistant answers the visitor's next question again.
    agent.locator('[data-action="reopen"]').click()
    agent.locator('[data-action="hand_back"]').wait_for()
    agent.locator('[data-action="hand_back"]').click()
    agent.locator('[data-action="hand_back"]').wait_for(state="hidden")
    assert conversation().mode == Conversation.Mode.BOT
    visitor_says(visitor, "كيف أعيد تعيين كلمة المرور؟")
    wait_text(visitor, "autoglm-chat >> .m.assistant .b", "You asked", timeout=20_000)


def test_arabic_agent_gets_a_right_to_left_inbox(
    agent_ar: Any, chat_server: ChatServer, new_page: Any, agent_page: Any
) -> None:
    agent = agent_page(chat_server, agent_ar)
    assert agent.locator("html").get_attribute("dir") == "rtl"
    assert agent.locator("html").get_attribute("lang") == "ar"
    wait_connected(agent)
    visitor = new_page(locale="de")
    visitor.goto(chat_server.url + "/")
    w(visitor, ".launch").click()
    visitor_says(visitor, "Ich möchte mit einem Mitarbeiter sprechen")
    open_first_waiting(agent)
    wait_text(agent, "#messages .msg.user .text", "[ar] Ich möchte mit einem Mitarbeiter sprechen")
    # Mirrored: the list is on the right of the conversation.
    side = agent.locator(".side").bounding_box()
    main = agent.locator(".conv").bounding_box()
    assert side["x"] > main["x"]
    assert agent.locator("#messages .msg.user .text").first.get_attribute("dir") == "auto"
    # The shortcuts overlay opens with "?" and closes with Escape.
    agent.locator("#conversation").focus()
    agent.keyboard.press("?")
    agent.locator("#help").wait_for()
    agent.keyboard.press("Escape")
    agent.locator("#help").wait_for(state="hidden")
    screenshot(agent, "inbox-rtl.png")


def test_tablet_width_stacks_the_list_above_the_conversation(
    agent_de: Any, chat_server: ChatServer, agent_page: Any
) -> None:
    agent = agent_page(chat_server, agent_de, viewport={"width": 820, "height": 1100})
    wait_connected(agent)
    side = agent.locator(".side").bounding_box()
    main = agent.locator(".conv").bounding_box()
    assert main["y"] >= side["y"] + side["height"] - 1
    assert agent.evaluate("document.documentElement.scrollWidth") <= 820


def test_an_agent_on_a_second_process_works_a_conversation_over_redis(
    agent_de: Any, redis_chat_servers: tuple[ChatServer, ChatServer], new_page: Any, agent_page: Any
) -> None:
    visitor_server, agent_server = redis_chat_servers
    agent = agent_page(agent_server, agent_de)
    wait_connected(agent)
    visitor = visitor_page(new_page, visitor_server)
    visitor_says(visitor, ASK_FOR_A_PERSON)
    # The queue event crossed processes: the row appears without a reload.
    open_first_waiting(agent)
    wait_text(agent, "#messages .msg.user .text", f"[de] {ASK_FOR_A_PERSON}")
    agent_says(agent, AGENT_REPLY)
    wait_text(visitor, "autoglm-chat >> .m.agent .b", f"[ar] {AGENT_REPLY}")
    visitor_says(visitor, THANKS)
    wait_text(agent, "#messages .msg.user .text", f"[de] {THANKS}")
    # Claimed by that reply: nobody waits any more, and the title says so.
    agent.wait_for_function("() => !/^\\(\\d+\\) /.test(document.title)")
