"""Writes to the knowledge base: indexing, JSONL import and reset, source sync.

Each job has its module; the public names are re-exported so `from knowledge.services import X`
works wherever X lives.
"""

from __future__ import annotations

from knowledge.services.importing import (
    ImportResult,
    articles_import,
    import_run_record,
    knowledge_reset,
)
from knowledge.services.indexing import (
    IndexResult,
    Progress,
    article_index,
    article_index_later,
    article_versions,
    articles_index,
)
from knowledge.services.sync import (
    articles_publish,
    source_sync,
    source_sync_later,
    sources_sync_due,
)

__all__ = [
    "ImportResult",
    "IndexResult",
    "Progress",
    "article_index",
    "article_index_later",
    "article_versions",
    "articles_import",
    "articles_index",
    "articles_publish",
    "import_run_record",
    "knowledge_reset",
    "source_sync",
    "source_sync_later",
    "sources_sync_due",
]
