"""Export everything stored about a visitor or an identified user as JSON (GDPR Art. 15)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from privacy.management.commands._subject import subject_arguments, subject_visitors
from privacy.services import visitor_export


class Command(BaseCommand):
    help = "Export a visitor's data (--visitor UUID) or an identified user's (--external-id ID)."

    def add_arguments(self, parser: CommandParser) -> None:
        subject_arguments(parser)
        parser.add_argument("--out", metavar="FILE", help="write here instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        visitors = subject_visitors(options)
        if not visitors:
            raise CommandError("No visitor found.")
        exports = [visitor_export(visitor=v, via="command") for v in visitors]
        data: dict[str, Any] = (
            exports[0]
            if options.get("visitor")
            else {"external_id": options["external_id"], "visitors": exports}
        )
        text = json.dumps(data, ensure_ascii=False, indent=2)
        if options.get("out"):
            Path(options["out"]).write_text(text + "\n", encoding="utf-8")
            self.stderr.write(f"Wrote {options['out']}.")
        else:
            self.stdout.write(text)
