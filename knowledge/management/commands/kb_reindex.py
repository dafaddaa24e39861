"""kb_reindex [--force]: bring every article's chunks up to date (after an upgrade that changed
the embedding model, or a change of KNOWLEDGE_CHUNK_TOKENS); unchanged articles cost nothing."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from knowledge.models import Article
from knowledge.services import articles_index

_BATCH = 200


class Command(BaseCommand):
    help = "Re-index the articles whose chunks are stale (all of them with --force)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="re-embed every article")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = list(Article.objects.order_by("pk").values_list("pk", flat=True))
        started = time.monotonic()
        changed = embedded = 0
        for start in range(0, len(ids), _BATCH):
            articles = list(Article.objects.filter(pk__in=ids[start : start + _BATCH]))
            result = articles_index(articles=articles, force=options["force"])
            changed += result.articles_changed
            embedded += result.chunks_embedded
            if result.articles_changed:
                sys.stderr.write(f"{min(start + _BATCH, len(ids))}/{len(ids)} articles\n")
        seconds = time.monotonic() - started
        self.stdout.write(
            f"{len(ids)} articles, {changed} re-indexed, {embedded} chunks embedded "
            f"in {seconds:.1f} s"
        )
