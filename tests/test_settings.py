"""Start-up configuration: a bad value stops start-up with a clear ImproperlyConfigured message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOOD_PRODUCTION = {
    "DATABASE_URL": "postgresql://app:pw@db.internal:5432/autoglm",
    "SECRET_KEY": "x" * 40,
    "ALLOWED_HOSTS": "chat.example.com",
}


_SUMMARY = (
    "{'debug': settings.DEBUG, 'db': settings.DATABASES['default']['HOST'],"
    " 'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], 'embedded': settings.EMBEDDED}"
)


def _load(env: dict[str, str], shown: str = _SUMMARY) -> subprocess.CompletedProcess[str]:
    """Settings loaded in a fresh interpreter with ENV (and none of ours); prints SHOWN as JSON."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"}
    }
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        f"print(json.dumps({shown}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "autoglm_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_defaults_with_nothing_set() -> None:
    result = _load({})
    assert result.returncode == 0, result.stderr
    assert '"debug": true' in result.stdout and '"embedded": true' in result.stdout
    assert "InMemoryChannelLayer" in result.stdout


def test_production_settings_use_the_given_services() -> None:
    result = _load({**GOOD_PRODUCTION, "REDIS_URL": "redis://cache.internal:6379/0"})
    assert result.returncode == 0, result.stderr
    assert '"debug": false' in result.stdout and '"db": "db.internal"' in result.stdout
    assert "RedisChannelLayer" in result.stdout


def test_secret_key_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s" * 50)
    env = {**GOOD_PRODUCTION, "SECRET_KEY_FILE": str(secret)}
    del env["SECRET_KEY"]
    assert _load(env).returncode == 0


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {"DATABASE_URL": "mysql://u@h/db", "SECRET_KEY": "x" * 40, "ALLOWED_HOSTS": "a"},
            "DATABASE_URL",
        ),
        ({"DATABASE_URL": "postgresql://u@h/db", "ALLOWED_HOSTS": "a"}, "SECRET_KEY"),
        ({**GOOD_PRODUCTION, "SECRET_KEY": "short"}, "SECRET_KEY"),
        ({**GOOD_PRODUCTION, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
        ({**GOOD_PRODUCTION, "DEBUG": "true"}, "DEBUG"),
        ({"DEBUG": "perhaps"}, "DEBUG"),
        ({"CHAT_MAX_MESSAGE_CHARS": "lots"}, "CHAT_MAX_MESSAGE_CHARS"),
        ({"CHAT_RATE_LIMIT_MESSAGES": "0"}, "CHAT_RATE_LIMIT_MESSAGES"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"LANGUAGE_CODE": "xx"}, "LANGUAGE_CODE"),
        ({"CSRF_TRUSTED_ORIGINS": "example.com"}, "CSRF_TRUSTED_ORIGINS"),
        ({"SECRET_KEY_FILE": "/nonexistent/secret"}, "SECRET_KEY_FILE"),
    ],
)
def test_bad_value_stops_start_up_naming_the_variable(env: dict[str, str], names: str) -> None:
    result = _load(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert names in result.stderr.splitlines()[-1]


def test_deploy_check_is_clean_with_production_defaults() -> None:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECURE_", "SESSION_", "CSRF_"))
        and k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "AUTOGLM_ALLOW_DEBUG"}
    }
    env = {
        **clean,
        **GOOD_PRODUCTION,
        "DJANGO_SETTINGS_MODULE": "autoglm_site.settings",
        # A key the deploy check accepts: 50 characters or more, of many different ones.
        "SECRET_KEY": "k3Yb7-Qz!pW9mR2xT_vL5nC8hJ4dF6sA0eG1uI%oP^yZ&Hq7Vw2Lm4Nc9Rt6Xs",
        "CHAT_IDENTITY_SECRET": "s" * 40,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "-c hnsw.ef_search=100"), ("250", "-c hnsw.ef_search=250"), ("0", None)],
)
def test_hnsw_search_breadth_is_a_connection_option_unless_zero(value, expected) -> None:
    env = {**GOOD_PRODUCTION, "DATABASE_URL": GOOD_PRODUCTION["DATABASE_URL"] + "?sslmode=require"}
    if value:
        env["KNOWLEDGE_HNSW_EF_SEARCH"] = value
    done = _load(env, "settings.DATABASES['default'].get('OPTIONS', {})")
    assert done.returncode == 0, done.stderr
    options = json.loads(done.stdout.strip().splitlines()[-1])
    assert options.get("sslmode") == "require"  # the URL's own options are kept
    assert options.get("options") == expected
