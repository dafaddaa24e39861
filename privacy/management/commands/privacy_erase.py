"""Erase everything stored about a visitor or an identified user (GDPR Art. 17)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from privacy.management.commands._subject import subject_arguments, subject_visitors
from privacy.models import AuditEvent
from privacy.services import audit_record, visitor_erase


class Command(BaseCommand):
    help = (
        "Erase a visitor (--visitor UUID) or an identified user (--external-id ID) and all "
        "their conversations; needs --yes. Erasing again does nothing and is audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subject_arguments(parser)
        parser.add_argument("--yes", action="store_true", help="really erase")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["yes"]:
            raise CommandError("Erasure cannot be undone: add --yes to confirm.")
        visitors = subject_visitors(options)
        if not visitors:
            if options.get("visitor"):  # erased before: the request is audited all the same
                audit_record(
                    action=AuditEvent.Action.ERASE,
                    target_kind=AuditEvent.TargetKind.VISITOR,
                    target_id=str(options["visitor"]),
                    via="command",
                    counts={"visitors": 0},
                )
            self.stdout.write("No visitor found: nothing to erase.")
            return
        for visitor in visitors:
            counts = visitor_erase(visitor=visitor, via="command")
            self.stdout.write(f"Erased visitor {visitor.uuid}: {json.dumps(counts)}")
