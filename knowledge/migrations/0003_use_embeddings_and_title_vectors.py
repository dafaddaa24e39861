"""Chunks are embedded by USE m3 (512 dims) with title vectors; the old 384-dim e5 vectors
cannot be converted, so chunks are dropped and every article is marked for re-indexing
(`manage.py kb_reindex`, which `make run` calls; `kb_import` and source syncs re-index too)."""

import pgvector.django.indexes
import pgvector.django.vector
from django.db import migrations


def mark_stale(apps, schema_editor):
    apps.get_model("knowledge", "Chunk").objects.all().delete()
    apps.get_model("knowledge", "Article").objects.update(indexed_hash="")


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0002_initial")]

    operations = [
        migrations.RunPython(mark_stale, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="chunk", name="knowledge_chunk_embedding_hnsw"),
        migrations.AlterField(
            model_name="chunk",
            name="embedding",
            field=pgvector.django.vector.VectorField(dimensions=512),
        ),
        migrations.AddField(
            model_name="chunk",
            name="title_embedding",
            field=pgvector.django.vector.VectorField(blank=True, dimensions=512, null=True),
        ),
        migrations.AddField(
            model_name="chunk",
            name="title_embedding_secondary",
            field=pgvector.django.vector.VectorField(blank=True, dimensions=384, null=True),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=pgvector.django.indexes.HnswIndex(
                ef_construction=64,
                fields=["embedding"],
                m=16,
                name="knowledge_chunk_embedding_hnsw",
                opclasses=["vector_cosine_ops"],
            ),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=pgvector.django.indexes.HnswIndex(
                ef_construction=64,
                fields=["title_embedding"],
                m=16,
                name="knowledge_chunk_title_hnsw",
                opclasses=["vector_cosine_ops"],
            ),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=pgvector.django.indexes.HnswIndex(
                ef_construction=64,
                fields=["title_embedding_secondary"],
                m=16,
                name="knowledge_chunk_title2_hnsw",
                opclasses=["vector_cosine_ops"],
            ),
        ),
    ]
