"""Chunks' keyword terms gain their Snowball stems (knowledge.text.stem): the stored terms of
every chunk in a language Snowball knows are extended in place, without re-embedding."""

from django.db import migrations

_BATCH = 2000


def add_stems(apps, schema_editor):
    from knowledge.text.tokenize import with_stems

    chunk_model = apps.get_model("knowledge", "Chunk")
    last = 0
    while True:
        batch = list(
            chunk_model.objects.filter(pk__gt=last).order_by("pk").only("pk", "language", "tokens")[
                :_BATCH
            ]
        )
        if not batch:
            return
        last = batch[-1].pk
        changed = []
        for chunk in batch:  # with_stems leaves languages without a stemmer (zh, ar, ja…) alone
            tokens = " ".join(with_stems(chunk.tokens.split(), language=chunk.language))
            if tokens != chunk.tokens:
                chunk.tokens = tokens
                changed.append(chunk)
        chunk_model.objects.bulk_update(changed, ["tokens"])


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0004_source_allowed_domains_publish_new_pages")]

    operations = [migrations.RunPython(add_stems, migrations.RunPython.noop)]
