#!/usr/bin/env python
"""CI check: fails when a catalogue is stale, incomplete, fuzzy, unsafe or rejected by msgfmt."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, default=ROOT, help="project root (locale/ in it)")
    parser.add_argument(
        "--no-stale", action="store_true", help="skip the extraction (staleness) check"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglm_site.settings")
    import django

    django.setup()
    from autoglm_site.catalogues import catalogues_check

    problems = catalogues_check(project_dir=args.project.resolve(), stale=not args.no_stale)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} catalogue problem(s); see README, Translating the interface.")
        return 1
    print("Catalogues: up to date, complete, no markup added, msgfmt --check clean.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
