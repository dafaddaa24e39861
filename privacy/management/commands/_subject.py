"""The data subject of a privacy command: --visitor UUID or --external-id ID."""

from __future__ import annotations

import uuid

from django.core.management.base import CommandError, CommandParser

from chat.models import Visitor
from privacy.selectors import visitors_find


def subject_arguments(parser: CommandParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--visitor", metavar="UUID", help="an anonymous visitor's id")
    group.add_argument(
        "--external-id", metavar="ID", help="an identified user's id (all their visitors)"
    )


def subject_visitors(options: dict[str, object]) -> list[Visitor]:
    if options.get("visitor"):
        try:
            visitor_uuid = uuid.UUID(str(options["visitor"]))
        except ValueError as exc:
            raise CommandError(f"not a visitor id: {options['visitor']}") from exc
        return visitors_find(visitor_uuid=visitor_uuid)
    return visitors_find(external_id=str(options.get("external_id") or ""))
