"""Chunking by headings and a token budget, with the title kept in every chunk."""

from __future__ import annotations

from knowledge.chunking import LEAD_TOKENS, chunk_article
from knowledge.embeddings import token_count

BODY = """Intro paragraph about plans.

## Invoices
Invoices are emailed every month.

### Old invoices
Older invoices are in the archive.

```
# not a heading inside code
```
"""


def test_sections_follow_headings_and_carry_the_heading_path() -> None:
    chunks = chunk_article(title="Billing", body=BODY, language="en", budget=200, count=token_count)
    assert [chunk.heading for chunk in chunks] == ["", "Invoices", "Invoices › Old invoices"]
    assert "# not a heading inside code" in chunks[2].text


def test_the_title_is_embedded_with_every_chunk() -> None:
    chunks = chunk_article(title="Billing", body=BODY, language="en", budget=200, count=token_count)
    assert all(chunk.embed_text.startswith("Billing\n") for chunk in chunks)


def test_a_title_without_words_gives_way_to_the_articles_first_words() -> None:
    chunks = chunk_article(title="#4711", body=BODY, language="en", budget=200, count=token_count)
    assert not any("4711" in chunk.embed_text for chunk in chunks)
    # The title vector embeds the first paragraph instead; a real title stays the title.
    assert chunks[0].title == "Intro paragraph about plans."
    named = chunk_article(title="Billing", body=BODY, language="en", budget=200, count=token_count)
    assert named[0].title == "Billing"


def test_a_long_first_paragraph_stands_in_for_a_title_only_in_part() -> None:
    body = " ".join(f"Sentence number {i} explains one more detail of refunds." for i in range(80))
    chunks = chunk_article(title="12-3", body=body, language="en", budget=200, count=token_count)
    assert chunks[0].title.startswith("Sentence number 0 explains")
    assert token_count(chunks[0].title) <= LEAD_TOKENS
    # Nothing in words at all: the title is kept as it is.
    bare = chunk_article(title="#9", body="", language="en", budget=200, count=token_count)
    assert bare[0].title == "#9"


def test_long_sections_are_split_within_the_token_budget() -> None:
    body = " ".join(f"Sentence number {i} explains one more detail of refunds." for i in range(80))
    chunks = chunk_article(title="Refunds", body=body, language="en", budget=64, count=token_count)
    assert len(chunks) > 5
    assert all(token_count(chunk.embed_text) <= 64 + 8 for chunk in chunks)
    assert "Sentence number 79" in chunks[-1].text


def test_hash_changes_with_text_and_language_only() -> None:
    first = chunk_article(
        title="T", body="Same text.", language="en", budget=100, count=token_count
    )
    again = chunk_article(
        title="T", body="Same text.", language="en", budget=100, count=token_count
    )
    other = chunk_article(
        title="T", body="Same text.", language="es", budget=100, count=token_count
    )
    edited = chunk_article(
        title="T", body="Other text.", language="en", budget=100, count=token_count
    )
    assert first[0].content_hash == again[0].content_hash
    assert first[0].content_hash != other[0].content_hash
    assert first[0].content_hash != edited[0].content_hash
