"""Warden settings: one module, driven by environment variables.

With no environment at all you get the embedded default: SQLite for Warden's own data,
Celery tasks run in-process (eager), an in-memory channel layer. Production differs only
in environment values (DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS, ...).
"""

from pathlib import Path

import dj_database_url

from config.channel_layer import redis_channel_layer
from config.env import env_bool, env_float, env_int, env_list, env_str
from config.oidc import oidc_settings
from config.site import site_layout

BASE_DIR = Path(__file__).resolve().parent.parent
# A checkout, or the control plane's installed wheel (config/site.py).
SITE = site_layout(BASE_DIR)
DATA_DIR = Path(env_str("WARDEN_DATA_DIR", str(SITE.default_root / "var")))

DEBUG = env_bool("DEBUG", False)
_DEV_SECRET = "warden-embedded-default-insecure-secret-key-change-me"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET)
EMBEDDED = env_str("DATABASE_URL", "") == ""
if SECRET_KEY == _DEV_SECRET and not EMBEDDED and not DEBUG:
    raise RuntimeError("SECRET_KEY must be set when DATABASE_URL points at a production database")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "drf_spectacular_sidecar",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",
    "governance",
    "classification",
    "approvals",
    "audit",
    "idempotency",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "governance.mfa_middleware.MfaRequiredMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "governance.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SITE.templates],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "governance.context_processors.roles",
                "config.health.version_context",
            ],
            # The shared words of every page: dates (`when`), scopes and levels.
            "builtins": [
                "governance.templatetags.warden_format",
                "approvals.templatetags.approvals_extras",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'warden.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
# PostgreSQL connections come from a pool in each process (psycopg_pool): a request borrows
# one instead of connecting (~5 ms on the same machine, more across a network; an approval's
# path to the held statement crossed three). 0 turns the pool off; persistent connections
# (DATABASE_CONN_MAX_AGE) are the other way to reuse them, not both.
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 10)
if DATABASES["default"]["ENGINE"].endswith("postgresql") and DATABASE_POOL_MAX_SIZE > 0:
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise RuntimeError(
            "DATABASE_CONN_MAX_AGE and DATABASE_POOL_MAX_SIZE both reuse connections: "
            "set DATABASE_POOL_MAX_SIZE=0 to use persistent connections instead of the pool"
        )
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": 10,  # seconds a request waits for a free connection before failing
    }
DATABASES["default"]["TEST"] = {"NAME": env_str("WARDEN_TEST_DATABASE_NAME", "") or None}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ALLOW_REGISTRATION = env_bool("WARDEN_ALLOW_SIGNUP", False)
ACCOUNT_ADAPTER = "governance.adapters.AccountAdapter"

# Single sign-on (OpenID Connect; config/oidc.py reads and checks these, docs/deployment.md).
# WARDEN_OIDC_PROVIDERS: JSON list of {id, name, server_url, client_id, secret[, scopes,
# groups_claim, token_auth_method]}. WARDEN_OIDC_GROUP_ROLES: JSON object mapping a provider
# group to Warden group name(s) (roles or reviewer groups); membership of those groups follows
# the claims at every sign-in.
# WARDEN_OIDC_REQUIRE_GROUP (default true) refuses a sign-in whose claims map to no group.
_OIDC = oidc_settings()
WARDEN_OIDC_GROUP_ROLES = _OIDC.group_roles
WARDEN_OIDC_REQUIRE_GROUP = _OIDC.require_group
SOCIALACCOUNT_ADAPTER = "governance.adapters.SocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [provider.allauth_app() for provider in _OIDC.providers],
    }
}
# The identity provider vouches for the person: the account is created at first sign-in,
# never linked to an existing local account by a matching e-mail address.
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_STORE_TOKENS = False
# Second factors (allauth.mfa): TOTP apps, WebAuthn security keys, and recovery codes.
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_ADAPTER = "governance.adapters.MfaAdapter"
MFA_TOTP_ISSUER = "Warden"
# WebAuthn needs https, except on localhost; true accepts plain http origins (tests, dev).
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = env_bool("WARDEN_MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN", DEBUG)
# Roles that must use a second factor (comma-separated: admins, reviewers, auditors,
# requesters): such a user sets one up before using the UI, and approves, denies and uses
# break-glass only after passing it (governance/mfa.py). Empty: MFA is optional.
WARDEN_MFA_REQUIRED = env_list("WARDEN_MFA_REQUIRED", [])
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "warden@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(SITE.default_root / "staticfiles")))
STATICFILES_DIRS = SITE.staticfiles_dirs
WHITENOISE_USE_FINDERS = True
FORMS_URLFIELD_ASSUME_HTTPS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.authentication.AccessTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.WardenAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "config.listing.StrictLimitOffsetPagination",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api.warden_exception_handler",
}
SPECTACULAR_SETTINGS = {
    # Swagger UI from the installed drf-spectacular-sidecar package: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TITLE": "Warden API",
    "DESCRIPTION": "Data classification and database governance control plane.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.created_id_links",
    ],
}

# Redis is optional: without REDIS_URL, tasks run in-process and websockets use memory.
REDIS_URL = env_str("REDIS_URL", "")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", REDIS_URL == "")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL or "cache+memory://")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE

if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Secrets at rest: Fernet keys, comma-separated, newest first. The newest encrypts; every one
# decrypts (MultiFernet) until `warden keys rotate-field-key` has re-encrypted every secret
# under the newest. A key derived from SECRET_KEY (the embedded default) is always last.
FIELD_ENCRYPTION_KEYS = env_list("WARDEN_FIELD_ENCRYPTION_KEY", [])
# Ed25519 private key (base64 of the raw 32 bytes) that signs policy bundles and checkpoints;
# without one, a key is generated once and kept in DATA_DIR.
SIGNING_KEY = env_str("WARDEN_SIGNING_KEY", "")
SIGNING_KEY_PATH = DATA_DIR / "signing_key.b64"
# Rotation (docs/deployment.md, key management): the next signing key, published to agents
# before it signs anything; and the public keys (base64) of retired signing keys, which
# still verify the checkpoints they signed.
SIGNING_KEY_NEXT = env_str("WARDEN_SIGNING_KEY_NEXT", "")
SIGNING_KEYS_RETIRED = env_list("WARDEN_SIGNING_KEYS_RETIRED", [])

# Access tokens expire after this many days unless their creator picks another date (0: never).
WARDEN_TOKEN_DEFAULT_DAYS = env_int("WARDEN_TOKEN_DEFAULT_DAYS", 90)

# Classification
SCAN_SAMPLE_SIZE = env_int("WARDEN_SCAN_SAMPLE_SIZE", 200)
SCAN_AUTOTAG_THRESHOLD = env_float("WARDEN_SCAN_AUTOTAG_THRESHOLD", 0.7)
SCAN_CONNECT_TIMEOUT = env_int("WARDEN_SCAN_CONNECT_TIMEOUT", 10)
SCAN_STATEMENT_TIMEOUT_MS = env_int("WARDEN_SCAN_STATEMENT_TIMEOUT_MS", 30000)
SCAN_MAX_VALUE_CHARS = env_int("WARDEN_SCAN_MAX_VALUE_CHARS", 2000)

DEMO_DATABASE_PATH = DATA_DIR / "demo_shop.sqlite3"
# SQLite datasources may only be files inside these directories (comma-separated), so an
# admin cannot point one at arbitrary files of the control plane's host.
WARDEN_SQLITE_DIRS = [Path(item) for item in env_list("WARDEN_SQLITE_DIRS", [str(DATA_DIR)])]
# `make run` loads the demo shop into this PostgreSQL database (see warden_demo/); empty: SQLite.
DEMO_SHOP_URL = env_str("WARDEN_DEMO_SHOP_URL", "")
# Where clients reach the agent (host:port), shown in each datasource's Connect panel until
# agents register themselves with the control plane; empty shows a placeholder.
WARDEN_AGENT_ADDRESS = env_str("WARDEN_AGENT_ADDRESS", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # One line per finished task drowns the scan's own progress output.
    "loggers": {"celery.app.trace": {"level": env_str("CELERY_TRACE_LOG_LEVEL", "WARNING")}},
}

if not DEBUG and not EMBEDDED:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)

# The embedded default runs eager tasks on a background thread (see config/dispatch.py).
EAGER_IN_THREAD = env_bool("WARDEN_EAGER_IN_THREAD", CELERY_TASK_ALWAYS_EAGER)

# Policy enforcement: the id of the masking key the agents hold (the key itself never leaves them).
MASKING_KEY_ID = env_str("WARDEN_MASKING_KEY_ID", "k1")
# Agents' polls reuse the last compiled bundle until a bundle input changes; this bounds how
# late a change made behind the services' back (raw SQL) reaches them. 0: compile every poll.
WARDEN_BUNDLE_CACHE_SECONDS = env_int("WARDEN_BUNDLE_CACHE_SECONDS", 30)

# Agents heartbeat every WARDEN_AGENT_HEARTBEAT_SECONDS (they read it from the heartbeat's
# answer); one not seen for OFFLINE seconds is offline, for STALE seconds flagged as stale.
WARDEN_AGENT_HEARTBEAT_SECONDS = env_int("WARDEN_AGENT_HEARTBEAT_SECONDS", 10)
WARDEN_AGENT_OFFLINE_SECONDS = env_int("WARDEN_AGENT_OFFLINE_SECONDS", 30)
WARDEN_AGENT_STALE_SECONDS = env_int("WARDEN_AGENT_STALE_SECONDS", 600)

# Approvals
WARDEN_MAX_GRANT_MINUTES = env_int("WARDEN_MAX_GRANT_MINUTES", 480)
WARDEN_PENDING_EXPIRY_MINUTES = env_int("WARDEN_PENDING_EXPIRY_MINUTES", 1440)
WARDEN_GRANT_WARNING_MINUTES = env_int("WARDEN_GRANT_WARNING_MINUTES", 15)
# Absolute links in webhooks and e-mails (e.g. https://warden.example.com).
WARDEN_BASE_URL = env_str("WARDEN_BASE_URL", "")

# Audit retention: 0 keeps events forever; otherwise older ones are archived, then pruned.
WARDEN_AUDIT_RETENTION_DAYS = env_int("WARDEN_AUDIT_RETENTION_DAYS", 0)
WARDEN_AUDIT_ARCHIVE_DIR = Path(
    env_str("WARDEN_AUDIT_ARCHIVE_DIR", str(DATA_DIR / "audit-archive"))
)
WARDEN_AUDIT_REPORT_DIR = Path(env_str("WARDEN_AUDIT_REPORT_DIR", str(DATA_DIR / "audit-reports")))
# Files written by export jobs started from the audit pages (downloaded by their creator).
WARDEN_AUDIT_JOB_DIR = Path(env_str("WARDEN_AUDIT_JOB_DIR", str(DATA_DIR / "audit-jobs")))

from audit.schedule import AUDIT_BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE = {
    "approvals-expire-due": {"task": "approvals.expire_due", "schedule": 60.0},
    **AUDIT_BEAT_SCHEDULE,
}
