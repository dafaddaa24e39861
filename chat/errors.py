"""Known chat errors: a stable code for programs and a translatable message for people."""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class ChatError(Exception):
    code = "internal_error"
    message: str | Promise = _("Something went wrong. Please try again.")

    def __init__(self, **params: Any) -> None:
        super().__init__(self.code)
        self.params = params

    def render(self) -> str:
        """The message in the active language (call inside translation.override)."""
        text = str(self.message)
        return text % self.params if self.params else text


def error_frame(error: ChatError, *, language: str, **extra: Any) -> dict[str, Any]:
    """The `error` frame of the chat and inbox sockets: its message in LANGUAGE; EXTRA fields
    (client_id, ref...) where given."""
    from django.utils import translation

    with translation.override(language):
        message = error.render()
    frame = {"type": "error", "code": error.code, "message": message}
    frame.update({key: value for key, value in extra.items() if value is not None})
    return frame


class InvalidJSON(ChatError):
    code = "invalid_json"
    message = _("This message could not be read. Please try again.")


class FrameTooLarge(ChatError):
    code = "frame_too_large"
    message = _("This message is too large to send.")


class InvalidFrame(ChatError):
    code = "invalid_frame"
    message = _("This request was not understood.")


class UnknownFrameType(ChatError):
    code = "unknown_type"
    message = _("This kind of request is not supported.")


class HelloRequired(ChatError):
    code = "hello_required"
    message = _("Please reconnect to continue the conversation.")


class InvalidToken(ChatError):
    code = "invalid_token"
    message = _("Your session has expired. Please start a new conversation.")


class ConversationNotFound(ChatError):
    code = "conversation_not_found"
    message = _("This conversation could not be found. Please start a new one.")


class MessageEmpty(ChatError):
    code = "message_empty"
    message = _("Please type a message before sending.")


class MessageTooLong(ChatError):
    code = "message_too_long"
    message = _("Your message is too long: at most %(limit)d characters are allowed.")


class InvalidText(ChatError):
    code = "invalid_text"
    message = _("Your message contains characters that cannot be used.")


class RateLimited(ChatError):
    code = "rate_limited"
    message = _("You are sending messages too quickly. Please wait a moment and try again.")


class TooManyVisitors(ChatError):
    code = "too_many_visitors"
    message = _(
        "Too many new conversations were started from your network. Please try again later."
    )


class TooManySockets(ChatError):
    code = "too_many_connections"
    message = _("Too many chat windows are open from your network. Close some and try again.")


class TooManyFrames(ChatError):
    code = "too_many_requests"
    message = _("Too many requests at once. Please wait a moment and try again.")


class HelloTimeout(ChatError):
    code = "hello_timeout"
    message = _("The connection was closed because it did not start in time.")


class ServerBusy(ChatError):
    code = "server_busy"
    message = _(
        "Many people are asking right now, so your message was not sent. "
        "Please send it again in a minute."
    )


class MessageNotFound(ChatError):
    code = "message_not_found"
    message = _("That message could not be found.")


class MessageBlocked(ChatError):
    code = "message_blocked"
    message = _(
        "Sorry, this message can't be answered: it goes against our chat guidelines. "
        "Please rephrase it."
    )


class ReplyFailed(ChatError):
    code = "reply_failed"
    message = _("Sorry, the assistant could not answer just now. Please try again.")


class InvalidIdentity(ChatError):
    code = "invalid_identity"
    message = _("We could not confirm who you are. You can keep chatting as a guest.")


class IdentityRequired(ChatError):
    code = "identity_required"
    message = _("Please sign in again to continue this conversation.")


class AgentRequired(ChatError):
    code = "agent_required"
    message = _("Sign in as an agent to use the inbox.")


class HandoffUnavailable(ChatError):
    code = "handoff_unavailable"
    message = _("Talking to a person is not available here.")


class InvalidEmail(ChatError):
    code = "invalid_email"
    message = _("Please enter a valid e-mail address.")


class ConversationNotOpen(ChatError):
    code = "conversation_closed"
    message = _("This conversation is resolved. Send a message to open it again.")


class TranscriptLimited(ChatError):
    code = "transcript_limited"
    message = _("A transcript was sent a moment ago. Please wait a few minutes.")


class ClientIdInUse(ChatError):
    code = "client_id_in_use"
    message = _("This message id was already used for another message.")
