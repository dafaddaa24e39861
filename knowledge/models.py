"""Knowledge base: sources, categories, translated articles, their indexed chunks, sync runs."""

from __future__ import annotations

import re

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from pgvector.django import HnswIndex, VectorField

# knowledge.embeddings.DIMENSIONS and SECONDARY_DIMENSIONS (not imported: models stay light).
EMBEDDING_DIMENSIONS = 512
SECONDARY_EMBEDDING_DIMENSIONS = 384


def _cosine_hnsw(name: str, field: str) -> HnswIndex:
    return HnswIndex(
        name=name, fields=[field], m=16, ef_construction=64, opclasses=["vector_cosine_ops"]
    )


_DOMAIN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def domain_entries(text: str) -> list[str]:
    """The host names of an allowed-domains field: one a line, or separated by commas/spaces."""
    return [entry.lower().rstrip(".") for entry in re.split(r"[\s,]+", text) if entry]


def validate_allowed_domains(text: str) -> None:
    bad = [entry for entry in domain_entries(text) if not _DOMAIN.fullmatch(entry)]
    if bad:
        raise ValidationError(
            _("Not a host name (example.com or *.example.com): %(entries)s"),
            params={"entries": ", ".join(bad)},
        )


class Source(models.Model):
    class Kind(models.TextChoices):
        MANUAL = "manual", _("Manual (typed in the admin)")
        URL = "url", _("Web page")
        SITEMAP = "sitemap", _("Sitemap")
        FILE = "file", _("Uploaded file")

    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.MANUAL)
    url = models.URLField(_("URL"), max_length=2000, blank=True)
    file = models.FileField(_("file"), upload_to="knowledge/sources/", blank=True)
    language = models.CharField(
        _("language"),
        max_length=10,
        blank=True,
        help_text=_("Language of the content; leave empty to detect it per page."),
    )
    allowed_domains = models.TextField(
        _("allowed domains"),
        blank=True,
        validators=[validate_allowed_domains],
        help_text=_(
            "Other hosts whose pages this source may sync (sitemap entries, nested sitemaps, "
            "redirects): one a line; *.example.com allows its subdomains. The host of the URL "
            "above is always allowed; leave empty to allow only that one."
        ),
    )
    publish_new_pages = models.BooleanField(
        _("publish new pages"),
        default=False,
        help_text=_(
            "Publish pages found by a sync at once. Off: new pages wait as drafts until "
            "someone reviews and publishes them; visitors never see drafts."
        ),
    )
    sync_interval_minutes = models.PositiveIntegerField(
        _("sync every (minutes)"),
        null=True,
        blank=True,
        help_text=_("Leave empty to sync only on demand."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("source")
        verbose_name_plural = _("sources")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Category(models.Model):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200, unique=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")

    # Translated through modeltranslation (see translation.py): title, body, url.
    title = models.CharField(_("title"), max_length=300)
    body = models.TextField(_("body (Markdown)"), blank=True)
    url = models.URLField(_("canonical URL"), max_length=2000, blank=True)
    external_id = models.CharField(
        _("external id"),
        max_length=300,
        null=True,
        blank=True,
        unique=True,
        help_text=_("The id given at import, or the page URL for fetched sources."),
    )
    source = models.ForeignKey(
        Source, verbose_name=_("source"), null=True, blank=True, on_delete=models.CASCADE
    )
    category = models.ForeignKey(
        Category, verbose_name=_("category"), null=True, blank=True, on_delete=models.SET_NULL
    )
    tags = models.CharField(_("tags"), max_length=500, blank=True, help_text=_("Comma-separated."))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PUBLISHED
    )
    # Fetched pages: validators for conditional requests, and the sitemap's lastmod.
    etag = models.CharField(max_length=300, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    sitemap_lastmod = models.CharField(max_length=100, blank=True)
    # Hash of everything the index is built from; equal hash: nothing to re-chunk.
    indexed_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("article")
        verbose_name_plural = _("articles")
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.title or self.external_id or str(self.pk)

    @property
    def public_id(self) -> str:
        """The id reported by search: the external id given at import, else the primary key."""
        return self.external_id or str(self.pk)


class Chunk(models.Model):
    """A piece of one language version of an article, tokenised and embedded for search."""

    article = models.ForeignKey(Article, related_name="chunks", on_delete=models.CASCADE)
    language = models.CharField(max_length=10)
    position = models.PositiveIntegerField()
    heading = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    # Space-separated index terms from knowledge.text.tokenize: the keyword side searches these
    # with PostgreSQL's "simple" configuration, so the tokenizer decides what a word is.
    tokens = models.TextField()
    search = models.GeneratedField(
        expression=SearchVector("tokens", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    content_hash = models.CharField(max_length=64)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    # The title of this language version, embedded alone, kept on its first chunk (position 0)
    # only: a question often says what an article's title says, and the title's own vector
    # finds it where a long chunk's vector is diluted by the body.
    title_embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    # The same title by the secondary embedder, for queries in languages the primary does not
    # know (Hebrew).
    title_embedding_secondary = VectorField(
        dimensions=SECONDARY_EMBEDDING_DIMENSIONS, null=True, blank=True
    )

    class Meta:
        verbose_name = _("chunk")
        verbose_name_plural = _("chunks")
        ordering = ["article_id", "language", "position"]
        indexes = [
            GinIndex(fields=["search"], name="knowledge_chunk_search_gin"),
            _cosine_hnsw("knowledge_chunk_embedding_hnsw", "embedding"),
            _cosine_hnsw("knowledge_chunk_title_hnsw", "title_embedding"),
            _cosine_hnsw("knowledge_chunk_title2_hnsw", "title_embedding_secondary"),
            models.Index(fields=["article", "language"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["article", "language", "content_hash"], name="knowledge_chunk_unique_hash"
            )
        ]

    def __str__(self) -> str:
        return f"{self.article_id}/{self.language}/{self.position}"


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        PARTIAL = "partial", _("Finished with errors")
        FAILED = "failed", _("Failed")

    class Trigger(models.TextChoices):
        MANUAL = "manual", _("Manual")
        SCHEDULE = "schedule", _("Schedule")
        SAVE = "save", _("Saved in the admin")
        IMPORT = "import", _("Import")
        COMMAND = "command", _("Command line")

    source = models.ForeignKey(
        Source, verbose_name=_("source"), null=True, blank=True, on_delete=models.CASCADE
    )
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RUNNING
    )
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    total = models.PositiveIntegerField(_("items"), default=0)
    done = models.PositiveIntegerField(_("done"), default=0)
    added = models.PositiveIntegerField(_("added"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    deleted = models.PositiveIntegerField(_("deleted"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    chunks_embedded = models.PositiveIntegerField(_("chunks embedded"), default=0)
    chunks_deleted = models.PositiveIntegerField(_("chunks deleted"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.source or self.trigger} {self.started_at:%Y-%m-%d %H:%M}"
