"""manage.py api_key create NAME --scope S ... | list | revoke PREFIX"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.models import KEY_PREFIX, SCOPES, ApiKey


class Command(BaseCommand):
    help = "Create, list or revoke API keys (a new key is printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("name")
        create.add_argument("--scope", action="append", default=[], choices=sorted(SCOPES))
        create.add_argument("--all-scopes", action="store_true")
        create.add_argument("--rate-limit", type=int, default=600)
        sub.add_parser("list")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "create":
            scopes = sorted(SCOPES) if options["all_scopes"] else options["scope"]
            if not scopes:
                raise CommandError("give --scope at least once, or --all-scopes")
            _key, plaintext = ApiKey.issue(
                options["name"], scopes, rate_limit=options["rate_limit"]
            )
            self.stdout.write(plaintext)
        elif options["action"] == "list":
            for key in ApiKey.objects.all():
                state = "revoked" if key.revoked_at else "active"
                scopes = ",".join(key.scopes)
                self.stdout.write(f"{KEY_PREFIX}{key.prefix}_…\t{key.name}\t{state}\t{scopes}")
        else:
            prefix = options["prefix"].removeprefix(KEY_PREFIX).split("_")[0]
            count = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).count()
            if not count:
                raise CommandError(f"no active key {options['prefix']}")
            for key in ApiKey.objects.filter(prefix=prefix):
                key.revoke()
            self.stdout.write(f"revoked {KEY_PREFIX}{prefix}")
