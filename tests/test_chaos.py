"""The chaos run (bench/chaos.py --short) loses and duplicates nothing.

It starts its own PostgreSQL (in a temporary folder), its own redis-server on a free port and
two Daphne processes, kills one of them, restarts Redis and stops PostgreSQL while 60
widget-like conversations talk; nothing shared (the suite's PostgreSQL, Redis on 6379) is
touched. About a minute and a half.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_chaos_run_loses_and_duplicates_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A short path: PostgreSQL's socket lives in the data folder (a unix socket path is short).
    data = tmp_path_factory.mktemp("chaos")
    result = subprocess.run(
        [sys.executable, "bench/chaos.py", "--short", "--data-dir", str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "result: lost=0 duplicated=0" in result.stdout, output[-6000:]
