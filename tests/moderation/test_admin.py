"""The admin pages: a rule's pattern must compile and run fast; hits are read only and can be
marked reviewed; a saved rule applies at once."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from chat.models import Conversation, Visitor
from moderation.admin import ModerationRuleForm
from moderation.models import ModerationHit, ModerationRule
from moderation.selectors import rules_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def _form(**fields: str) -> ModerationRuleForm:
    data = {"language": "", "kind": "regex", "applies_to": "both", "action": "block"}
    data.update(fields)
    return ModerationRuleForm(data={**data, "active": "on"})


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("free (money", "not a valid regular expression"),
        ("a" * 501, "too long"),
        ("(a|aa)+$", "takes too long"),
        ("x*", "matches empty text"),
    ],
)
def test_a_bad_pattern_is_refused(pattern: str, problem: str) -> None:
    form = _form(pattern=pattern)
    assert not form.is_valid()
    assert problem in " ".join(form.errors["pattern"])


def test_a_good_pattern_and_a_word_list_are_accepted() -> None:
    assert _form(pattern=r"v[i1]agra|\bfree\s+money\b").is_valid()
    assert _form(kind="words", pattern="darn\n坏蛋\n").is_valid()
    assert not _form(kind="words", pattern=" \n ").is_valid()


def test_admin_refuses_an_invalid_regex_and_saves_a_good_one(admin_client: Client) -> None:
    url = "/admin/moderation/moderationrule/add/"
    data = {"language": "", "kind": "regex", "applies_to": "both", "action": "mask"}
    response = admin_client.post(url, {**data, "pattern": "(unclosed", "active": "on"})
    assert response.status_code == 200 and not ModerationRule.objects.exists()
    assert "not a valid regular expression" in response.content.decode()
    assert rules_for(language="en", direction="input") == ()  # now remembered for a while
    response = admin_client.post(url, {**data, "pattern": "darn", "active": "on"})
    assert response.status_code == 302
    # Saved here: this process forgets its remembered rules at once.
    assert [r.rule_id for r in rules_for(language="en", direction="input")] == [
        ModerationRule.objects.get().pk
    ]


def test_hits_are_read_only_and_can_be_marked_reviewed(admin_client: Client) -> None:
    conversation = Conversation.objects.create(visitor=Visitor.objects.create(), language="en")
    hits = [
        ModerationHit.objects.create(
            conversation=conversation, direction="input", action="block", excerpt=f"bad {i}"
        )
        for i in range(2)
    ]
    listing = admin_client.get("/admin/moderation/moderationhit/")
    assert listing.status_code == 200 and "bad 1" in listing.content.decode()
    assert admin_client.get("/admin/moderation/moderationhit/add/").status_code == 403
    page = admin_client.get(f"/admin/moderation/moderationhit/{hits[0].pk}/change/")
    assert page.status_code == 200 and 'name="excerpt"' not in page.content.decode()
    response = admin_client.post(
        "/admin/moderation/moderationhit/",
        {"action": "hits_mark_reviewed", "_selected_action": [hits[0].pk]},
    )
    assert response.status_code == 302
    assert [h.reviewed for h in ModerationHit.objects.order_by("id")] == [True, False]
