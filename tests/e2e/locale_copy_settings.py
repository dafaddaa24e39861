"""Settings of a browser test's server whose catalogues are a copy (AUTOGLM_TEST_LOCALE_DIR), so
a test can save and compile translations without touching the committed ones."""

from __future__ import annotations

import os
from pathlib import Path

from autoglm_site.settings import *  # noqa: F403
from autoglm_site.settings import BASE_DIR

LOCALE_PATHS = [Path(os.environ["AUTOGLM_TEST_LOCALE_DIR"])]
ROSETTA_EXCLUDED_PATHS = [str(BASE_DIR / "locale")]
