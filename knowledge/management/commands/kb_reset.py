"""kb_reset --yes: empty the knowledge base and nothing else."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge.services import knowledge_reset


class Command(BaseCommand):
    help = "Delete every article, chunk, category, source and sync run (needs --yes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--yes", action="store_true", help="really delete")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["yes"]:
            raise CommandError("kb_reset deletes the whole knowledge base; add --yes to confirm.")
        counts = knowledge_reset()
        self.stdout.write(", ".join(f"{count} {name} deleted" for name, count in counts.items()))
