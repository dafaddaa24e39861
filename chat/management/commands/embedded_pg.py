"""Start, stop or show the packaged PostgreSQL of the embedded mode."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from autoglm_site.embedded import ensure_database, stop_database


class Command(BaseCommand):
    help = "Manage the packaged PostgreSQL server used when DATABASE_URL is not set."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.EMBEDDED:
            self.stdout.write("DATABASE_URL is set: there is no embedded server to manage.")
            return
        pg_dir = settings.EMBEDDED_PG_DIR
        if options["action"] == "start":
            ensure_database()
            self.stdout.write(f"PostgreSQL running, socket in {pg_dir}")
        elif options["action"] == "stop":
            stopped = stop_database()
            self.stdout.write("PostgreSQL stopped." if stopped else "PostgreSQL was not running.")
        else:
            running = (pg_dir / "postmaster.pid").exists()
            self.stdout.write(f"PostgreSQL {'running' if running else 'stopped'} in {pg_dir}")
