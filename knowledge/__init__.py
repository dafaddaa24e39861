"""The company's knowledge base: articles, sources, sync and search."""
