"""manage.py privacy_export and privacy_erase."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from chat.models import Conversation, Visitor
from privacy.models import AuditEvent
from tests.privacy.data import visitor_with_data

pytestmark = pytest.mark.django_db


def test_export_by_uuid_writes_json_to_a_file(tmp_path: Path) -> None:
    data = visitor_with_data()
    out = tmp_path / "export.json"
    call_command("privacy_export", "--visitor", str(data.visitor.uuid), "--out", str(out))
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert exported["conversations"][0]["messages"][0]["text"].endswith("lina@example.com")


def test_export_by_external_id_covers_all_their_visitors() -> None:
    visitor_with_data(external_id="user-7")
    visitor_with_data(external_id="user-7")
    visitor_with_data(external_id="user-8")
    stdout = io.StringIO()
    call_command("privacy_export", "--external-id", "user-7", stdout=stdout)
    exported = json.loads(stdout.getvalue())
    assert exported["external_id"] == "user-7" and len(exported["visitors"]) == 2
    assert AuditEvent.objects.filter(action="export").count() == 2


def test_export_of_nobody_fails() -> None:
    with pytest.raises(CommandError):
        call_command("privacy_export", "--external-id", "nobody")


def test_erase_needs_yes() -> None:
    data = visitor_with_data()
    with pytest.raises(CommandError):
        call_command("privacy_erase", "--visitor", str(data.visitor.uuid))
    assert Visitor.objects.filter(pk=data.visitor.pk).exists()


def test_erase_by_external_id_then_again_is_a_no_op() -> None:
    visitor_with_data(external_id="user-7")
    visitor_with_data(external_id="user-7")
    kept = visitor_with_data(external_id="user-8")
    call_command("privacy_erase", "--external-id", "user-7", "--yes", stdout=io.StringIO())
    assert list(Conversation.objects.values_list("pk", flat=True)) == [kept.conversation.pk]
    stdout = io.StringIO()
    call_command("privacy_erase", "--external-id", "user-7", "--yes", stdout=stdout)
    assert "nothing to erase" in stdout.getvalue()
    assert AuditEvent.objects.filter(action="erase").count() == 2


def test_erasing_an_erased_uuid_is_audited() -> None:
    data = visitor_with_data()
    uuid = str(data.visitor.uuid)
    call_command("privacy_erase", "--visitor", uuid, "--yes", stdout=io.StringIO())
    call_command("privacy_erase", "--visitor", uuid, "--yes", stdout=io.StringIO())
    events = AuditEvent.objects.filter(action="erase", target_id=uuid)
    assert [e.counts["visitors"] for e in events.order_by("id")] == [1, 0]
