"""kb_import PATH: import JSONL articles ({"id","lang","title","body"[,"url","category"]})."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge.services import articles_import, import_run_record


class Command(BaseCommand):
    help = "Import knowledge articles from a JSONL file and index them (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="JSONL file, one article translation per line")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        try:
            handle = path.open(encoding="utf-8", errors="strict")
            lines = handle.read().splitlines()
            handle.close()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: {exc}") from exc

        def progress(done: int, total: int) -> None:
            if done == total or done % 50 == 0:
                sys.stderr.write(f"indexed {done}/{total} changed articles\n")

        result = articles_import(lines=lines, progress=progress)
        import_run_record(result=result)
        for error in result.errors:
            self.stderr.write(f"{error['item']}: {error['error']}")
        self.stdout.write(
            f"{result.lines} lines: {result.added} added, {result.updated} updated, "
            f"{result.unchanged} unchanged, {result.failed} failed; "
            f"{result.index.chunks_embedded} chunks embedded, "
            f"{result.index.chunks_deleted} deleted"
        )
