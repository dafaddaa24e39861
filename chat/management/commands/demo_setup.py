"""Prepare the local demo: a demo admin account (credentials printed) and the demo URL."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create the demo admin (embedded mode only) and print how to log in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="where the site runs")
        parser.add_argument("--force", action="store_true", help="also outside embedded mode")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.EMBEDDED and not options["force"]:
            raise CommandError("demo_setup is for the embedded local mode; use --force to insist.")
        password_file = settings.DATA_DIR / "demo-admin-password"
        if password_file.exists():
            password = password_file.read_text(encoding="utf-8").strip()
        else:
            password = secrets.token_urlsafe(12)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password, encoding="utf-8")
            password_file.chmod(0o600)
        user_model = get_user_model()
        user, _created = user_model.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        url = options["url"].rstrip("/") + "/"
        self.stdout.write(self.style.SUCCESS(f"Demo site:  {url}"))
        self.stdout.write(f"Admin:      {url}admin/  (user: admin, password: {password})")
