"""The agent inbox in headless Chromium against a real Daphne: an Arabic visitor in the widget,
a German (or Arabic) agent in /inbox/ (docs/inbox.md). The fake backend "translates" into
`[<language>] <text>`, so a translation and its original can be told apart."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chat.models import Conversation, Message
from tests.e2e.conftest import ChatServer, agent_create, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ASK_FOR_A_PERSON = "أريد التحدث مع موظف"  # "I want to talk to an employee"
THANKS = "شكرا لك"
AGENT_REPLY = "Guten Tag! Ich schaue mir Ihr Konto gleich an."


# --- the visitor's widget -------------------------------------------------------------------
def w(page: Any, selector: str) -> Any:
    return page.locator(f"autoglm-chat >> {selector}")


# The frames the widget received, for the message of a failed wait.
RECORD_FRAMES = (
    "(() => { const Native = window.WebSocket; window.__frames_in = [];"
    " window.WebSocket = function (url, p) { const s = new Native(url, p);"
    " s.addEventListener('message', e => window.__frames_in.push(e.data)); return s; };"
    " window.WebSocket.prototype = Native.prototype; })()"
)


def visitor_page(new_page: Any, server: ChatServer, locale: str = "ar") -> Any:
    page = new_page(locale=locale)
    page.add_init_script(RECORD_FRAMES)
    page.goto(server.url + "/")
    w(page, ".launch").click()
    w(page, "textarea").wait_for()
    return page


def visitor_sees(page: Any, text: str, server: ChatServer, selector: str = ".m.agent .b") -> None:
    """Wait for TEXT in the widget; on a timeout say what the widget got and the server said."""
    try:
        page.locator(f"autoglm-chat >> {selector}", has_text=text).first.wait_for()
    except Exception as exc:
        frames = page.evaluate("window.__frames_in || []")[-15:]
        raise AssertionError(
            f"the visitor never saw {text!r}; last frames: {frames}\n{server.log_tail()}"
        ) from exc


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
    visitor_sees(visitor, f"[ar] {AGENT_REPLY}", chat_server)
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
    visitor_sees(visitor, "[ar] Noch etwas?", chat_server)
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
    visitor_sees(visitor, "[ar] Hallo!", chat_server)
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
    visitor_sees(visitor, "You asked", chat_server, selector=".m.assistant .b")


def test_arabic_agent_gets_a_right_to_left_inbox(
    agent_ar: Any, chat_server: ChatServer, new_page: Any, agent_page: Any
) -> None:
    agent = agent_page(chat_server, agent_ar)
    assert agent.locator("html").get_attribute("dir") == "rtl"
    assert agent.locator("html").get_attribute("lang") == "ar"
    wait_connected(agent)
    visitor = visitor_page(new_page, chat_server, locale="de")
    visitor_says(visitor, "Ich möchte mit einem Mitarbeiter sprechen")
    open_first_waiting(agent)
    wait_text(agent, "#messages .msg.user .text", "[ar] Ich möchte mit einem Mitarbeiter sprechen")
    # Mirrored: the list is on the right of the conversation.
    side = agent.locator(".side").bounding_box()
    main = agent.locator(".conv").bounding_box()
    assert side["x"] > main["x"]
    assert agent.locator("#messages .msg.user .text").first.get_attribute("dir") == "auto"
    screenshot(agent, "inbox-rtl.png")
    # The shortcuts overlay opens with "?" and closes with Escape.
    agent.locator("#conversation").focus()
    agent.keyboard.press("?")
    agent.locator("#help").wait_for()
    agent.keyboard.press("Escape")
    agent.locator("#help").wait_for(state="hidden")


def test_composer_tools_canned_replies_knowledge_translation_assign_and_transfer(
    agent_de: Any, chat_server: ChatServer, new_page: Any, agent_page: Any
) -> None:
    from inbox.models import CannedReply, Team

    CannedReply.objects.create(
        language="ar", shortcut="greet", title="Begrüßung", text="مرحبا! كيف يمكنني مساعدتك؟"
    )
    CannedReply.objects.create(language="", shortcut="bye", title="Abschied", text="Bye!")
    team = Team.objects.create(name="Support Arabisch", languages=["ar"])
    bob = agent_create(username="bob", name="Bob", language="en", languages=["en"])
    agent = agent_page(chat_server, agent_de)
    # The knowledge search answers what the assistant would retrieve; here a fixed answer.
    agent.route(
        re.compile(r".*/inbox/api/knowledge\?.*"),
        lambda route: route.fulfill(
            json=[
                {
                    "title": "Reset your password",
                    "url": "https://help.example/reset",
                    "snippet": "Open Settings, then Security.",
                    "language": "ar",
                    "score": 0.9,
                    "relevant": True,
                }
            ]
        ),
    )
    wait_connected(agent)
    visitor = visitor_page(new_page, chat_server)
    visitor_says(visitor, ASK_FOR_A_PERSON)
    open_first_waiting(agent)

    # "/" and a shortcut, then Tab: the canned reply in the conversation's language.
    reply = agent.locator("#reply")
    reply.click()
    reply.press_sequentially("/gr")
    agent.locator("#canned [role=option]", has_text="/greet").wait_for()
    assert agent.locator("#canned [role=option]").count() == 1
    reply.press("Tab")
    assert reply.input_value() == "مرحبا! كيف يمكنني مساعدتك؟"
    # Translation off: the visitor gets the agent's words as written.
    agent.locator('[data-action="translation"]').click()
    agent.locator('[data-action="translation"][aria-pressed="false"]').wait_for()
    reply.press("Control+Enter")
    visitor_sees(visitor, "مرحبا! كيف يمكنني مساعدتك؟", chat_server)
    assert not conversation().translation_enabled

    # The picker lists every canned reply; the knowledge panel's Insert pastes title, url, text.
    agent.locator("#canned-toggle").click()
    agent.locator("#canned [role=option]", has_text="/bye").wait_for()
    agent.locator("#canned [role=option]", has_text="/bye").click()
    assert reply.input_value() == "Bye!"
    agent.locator("#kb-toggle").click()
    agent.locator("#kb-q").fill("password")
    agent.locator("#kb-q").press("Enter")
    agent.locator("#kb-results .insert").click()
    assert reply.input_value() == (
        "Bye!\n\nReset your password\nhttps://help.example/reset\nOpen Settings, then Security."
    )

    # Assign to Bob, then transfer to a team's queue.
    agent.locator("#assign").select_option(str(bob.pk))
    agent.wait_for_function(
        "() => document.getElementById('conv-meta').textContent.includes('Bob')"
    )
    assert conversation().assignee_id == bob.pk
    agent.locator("#transfer").select_option(f"team:{team.pk}")
    agent.wait_for_function("() => AutoGLMInbox.state().mode === 'waiting'")
    assert agent.locator("#conv-meta", has_text="Support Arabisch").count() == 1
    assert conversation().team_id == team.pk
    assert conversation().mode == Conversation.Mode.WAITING


def test_sound_mute_is_remembered_and_notifications_are_asked_for_politely(
    agent_de: Any, chat_server: ChatServer, new_page: Any, agent_page: Any
) -> None:
    agent = agent_page(chat_server, agent_de)
    wait_connected(agent)
    # Never asked on load: a button offers it (the browser has not been asked yet).
    assert agent.evaluate("Notification.permission") == "default"
    assert agent.locator("#notify").is_visible()
    agent.locator("#mute").click()
    assert agent.locator("#mute").get_attribute("aria-pressed") == "true"
    agent.reload()
    wait_connected(agent)
    assert agent.locator("#mute").get_attribute("aria-pressed") == "true"
    visitor = visitor_page(new_page, chat_server)
    visitor_says(visitor, ASK_FOR_A_PERSON)
    rows(agent).first.wait_for()
    agent.wait_for_function("() => AutoGLMInbox.frames.includes('queue')")
    assert agent.evaluate("AutoGLMInbox.beeps") == 0
    # Where notifications are allowed, the offer is gone.
    allowed = agent_page(chat_server, agent_de, permissions=["notifications"])
    assert allowed.evaluate("Notification.permission") == "granted"
    assert not allowed.locator("#notify").is_visible()


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
    visitor_sees(visitor, f"[ar] {AGENT_REPLY}", visitor_server)
    visitor_says(visitor, THANKS)
    wait_text(agent, "#messages .msg.user .text", f"[de] {THANKS}")
    # Claimed by that reply: nobody waits any more, and the title says so.
    agent.wait_for_function("() => !/^\\(\\d+\\) /.test(document.title)")
