"""AutoGLM site package: settings, ASGI entry point, URLs and the Celery app."""

from autoglm_site.celery import app as celery_app

__all__ = ("celery_app",)
