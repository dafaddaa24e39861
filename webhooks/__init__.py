"""Webhooks: events emitted by services after commit, signed and delivered by Celery."""
