#!/usr/bin/env python
"""Django's command-line utility; in embedded mode it starts the packaged PostgreSQL first."""

from __future__ import annotations

import os
import sys

_NO_DATABASE_COMMANDS = {
    "help",
    "version",
    "--help",
    "--version",
    "-h",
    "makemessages",
    "compilemessages",
    "check",
    "collectstatic",
    "embedded_pg",
}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    if command not in _NO_DATABASE_COMMANDS:
        from autoglm_site.embedded import ensure_database

        ensure_database()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
