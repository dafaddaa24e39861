"""The HTTP API under /api/v1/ (django-ninja): keys with scopes, errors with stable codes."""
