"""Settings for psyfi-review, read from the environment.

Every value comes through django-environ, so a malformed variable stops
start-up with its name. With nothing set, the defaults give the single-box
demo: SQLite in var/, a filesystem Celery broker (no server needed) and the
built-in sandbox EHR. `psyfi_review.settings_production` tightens this for a
real deployment and refuses to start without the secrets it needs.
"""

import re
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from integrations.egress import egress_allow_setting
from psyfi_review.env_checks import absolute_uri, fernet_keys, positive_number

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("PSYFI_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# The development key is only a default for the demo; settings_production
# demands a real one.
SECRET_KEY = env.str("SECRET_KEY", default="insecure-demo-key-change-me-for-anything-real-0123456789")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "simple_history",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "notes",
    "integrations",
    "audit",
    "accounts",
    "practice_admin",
    "quality",
]

MIDDLEWARE = [
    # First: /healthz, /readyz and /metrics answer before host checks and the
    # https redirect (operations/middleware.py says why).
    "operations.middleware.OperationsEndpointsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "audit.middleware.RequestContextMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "notes.middleware.IdleTimeoutMiddleware",
    "notes.middleware.PracticeTimezoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Axes last: it turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "psyfi_review.urls"
WSGI_APPLICATION = "psyfi_review.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "notes.context_processors.membership",
                "integrations.context_processors.open_alerts",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'psyfi.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded database lives here
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The demo's web server and worker write the same file. SQLite's default
    # (rollback journal, deferred transactions, no wait) gave "database is
    # locked" error pages while the worker delivered: WAL lets readers run
    # beside the writer, IMMEDIATE takes the write lock when a transaction
    # begins (a deferred one that later upgrades fails at once instead of
    # waiting), and the timeout waits that long for the lock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
if DATABASES["default"]["ENGINE"].endswith("postgresql") and env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
    # Lets the delivery worker's hot reads (psyfi_review/compiled_reads.py)
    # be prepared, so after their first few runs on a connection the server
    # stops planning them; they ask for it explicitly. Django's own client-side cursors never prepare.
    # Off (false) for a PgBouncer older than 1.21 in transaction mode.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 1_000_000)
DATABASES["default"].setdefault("TEST", {})
if env.str("PSYFI_TEST_DB", default=""):
    # Lets several test runs share one PostgreSQL server without colliding.
    DATABASES["default"]["TEST"]["NAME"] = env.str("PSYFI_TEST_DB")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # Axes first so a locked-out account is refused before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Lockout after repeated failed logins (django-axes), per username and address.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Automatic logoff after this much inactivity (notes.middleware.IdleTimeoutMiddleware).
IDLE_TIMEOUT = timedelta(minutes=env.int("IDLE_TIMEOUT_MINUTES", default=15))
# One OTP step-up covers a batch of signatures for this long.
SIGN_STEP_UP_WINDOW = timedelta(minutes=env.int("SIGN_STEP_UP_MINUTES", default=15))
# Active review time (notes.review_services): the page sends a heartbeat this
# often while visible and in use, stops after this much idleness, and the
# server credits at most this much per heartbeat.
REVIEW_HEARTBEAT_INTERVAL_SECONDS = env.int("REVIEW_HEARTBEAT_INTERVAL_SECONDS", default=15)
REVIEW_IDLE_AFTER_SECONDS = env.int("REVIEW_IDLE_AFTER_SECONDS", default=60)
REVIEW_HEARTBEAT_MAX_SECONDS = env.int("REVIEW_HEARTBEAT_MAX_SECONDS", default=30)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG and env.bool("HTTPS", default=False))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy: everything from our own origin, nothing inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# The image collects static files outside var/ (Dockerfile), which may be a volume.
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="psyfi-review@localhost")

# Celery. With no broker configured the demo uses kombu's filesystem
# transport: a real worker process, no server to install.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    # The transport does not create its folders; the demo must start on a bare checkout.
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# No result store by default: the database rows are the truth, not task results.
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Each worker holds twice its concurrency in messages, so a thread that
# finishes a delivery starts the next at once instead of waiting for its ack
# and the broker's next message (about 3 ms a delivery, bench/delivery.py).
# A message held by a worker that dies is delivered again after the broker's
# visibility timeout; the sweeper re-enqueues its row long before that.
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=2)
# Workers keep their database connection between tasks (psyfi_review/celery.py:
# keep_database_connections, tidy_database_connections). Celery's Django
# fix-up would close it around every task unless this is set; it still
# recycles it after this many tasks.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=200)
WORKER_CONN_MAX_AGE = env.int("WORKER_CONN_MAX_AGE", default=300)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"

# The cache holds the API rate-limit and refused-key counters
# (notes/api_throttles.py), so every web process and the worker must share it:
# Redis when there is one, else files in var/ (the single-box demo, where the
# web server and the worker are separate processes on one machine).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}
    )
    | {"KEY_PREFIX": "psyfi-cache"}
}


def _throttle_rate(name: str, default: str) -> str:
    """DRF's "<count>/<period>" (period s, min, hour or day); anything else
    stops start-up here rather than at the first refused request."""
    value = env.str(name, default=default)
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name} must look like 10/min (a count, then s, min, hour or day).")
    return value


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["notes.permissions.IsVerifiedMember"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "notes.api_errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Refused and unauthenticated API calls, per key prefix and per client
    # address (notes/api_throttles.py; docs/deployment.md, rate limits).
    "DEFAULT_THROTTLE_RATES": {
        "api_refused_key": _throttle_rate("API_REFUSED_KEY_RATE", "10/min"),
        "api_unauthenticated": _throttle_rate("API_UNAUTHENTICATED_RATE", "30/min"),
    },
    # The client address is REMOTE_ADDR unless this many proxies in front of
    # the app append to X-Forwarded-For; 0 trusts no X-Forwarded-For at all.
    "NUM_PROXIES": env.int("API_TRUSTED_PROXY_COUNT", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "psyfi-review API",
    "DESCRIPTION": "Draft intake for AI scribes and read access for the review app.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Draft intake API (notes/intake_api.py). A request body above this is refused
# with 413 before it is parsed; a long (100 KB) note fits with room to spare.
INTAKE_MAX_BODY_BYTES = env.int("INTAKE_MAX_BODY_BYTES", default=1024 * 1024)
# Fields outside intake schema 1 per request; each becomes a flag row on the
# note (notes/intake_limits.py). A scribe's few extras fit with room to spare.
INTAKE_MAX_EXTRA_FIELDS = env.int("INTAKE_MAX_EXTRA_FIELDS", default=50)
# What one request's drafts hold together: a group session repeats its
# session-wide fields in each participant's draft (bench/intake.py, slowest draft).
INTAKE_MAX_STORED_BYTES = env.int("INTAKE_MAX_STORED_BYTES", default=1024 * 1024)
# After a key rotation the old key keeps working this long.
INTAKE_KEY_ROTATION_OVERLAP = timedelta(hours=env.int("INTAKE_KEY_OVERLAP_HOURS", default=24))

# How long records are kept before the daily retention report lists them
# (audit.retention). Reported only: nothing is ever deleted automatically.
AUDIT_RETENTION_YEARS = env.int("AUDIT_RETENTION_YEARS", default=6)

# Signed checkpoints of the audit chain (audit.anchoring; docs/deployment.md,
# "Audit chain anchoring"). The Ed25519 signing key lives in the environment
# (PEM or base64 of the 32 raw bytes) or in a file, never in the database;
# the demo makes a key file on first use, production does not. Verifiers
# need only public keys: the signing key's own and any listed here (keys
# retired by a rotation, base64 or PEM, comma-separated). Every checkpoint
# is also appended, as a JSON line, to files in AUDIT_ANCHOR_DIR.
AUDIT_ANCHOR_SIGNING_KEY = env.str("AUDIT_ANCHOR_SIGNING_KEY", default="")
AUDIT_ANCHOR_KEY_FILE = env.str("AUDIT_ANCHOR_KEY_FILE", default=str(VAR_DIR / "audit-anchor-key.pem"))
AUDIT_ANCHOR_GENERATE_KEY = env.bool("AUDIT_ANCHOR_GENERATE_KEY", default=True)
AUDIT_ANCHOR_PUBLIC_KEYS = env.list("AUDIT_ANCHOR_PUBLIC_KEYS", default=[])
AUDIT_ANCHOR_DIR = env.str("AUDIT_ANCHOR_DIR", default=str(VAR_DIR / "audit-anchors"))
AUDIT_ANCHOR_INTERVAL_MINUTES = env.int("AUDIT_ANCHOR_INTERVAL_MINUTES", default=60)

# Identifier system for notes we send to EHRs: an absolute URI this install
# owns and never changes (see MAPPING.md, idempotency). settings_production
# has no default: changing it later makes every retry a new note at the EHR.
PSYFI_IDENTIFIER_SYSTEM = absolute_uri(
    "PSYFI_IDENTIFIER_SYSTEM", env.str("PSYFI_IDENTIFIER_SYSTEM", default="urn:psyfi-review:demo:note-id")
)

# EHR delivery (integrations). Keys for credentials at rest: comma-separated
# Fernet keys, newest first; older keys still decrypt, so a key rotates by
# prepending the new one and running `manage.py integrations_reencrypt`.
# Empty here means the demo's key derived from SECRET_KEY (integrations.crypto);
# settings_production requires keys of their own.
PSYFI_CREDENTIALS_KEYS = fernet_keys(
    "PSYFI_CREDENTIALS_KEYS", env.list("PSYFI_CREDENTIALS_KEYS", default=[]), required=False
)
# Transient faults (refused, timeouts, 429, 502-504) are retried for a time
# budget, not a number of attempts; only a permanent failure or a spent budget
# dead-letters (invariant 3).
PSYFI_DELIVERY_RETRY_BUDGET_HOURS = env.float("PSYFI_DELIVERY_RETRY_BUDGET_HOURS", default=72.0)
PSYFI_DELIVERY_LONG_RETRY_ALERT_MINUTES = env.float("PSYFI_DELIVERY_LONG_RETRY_ALERT_MINUTES", default=60.0)
# A patient check passed for a delivery holds this long across its retries.
PSYFI_PATIENT_RECHECK_HOURS = env.float("PSYFI_PATIENT_RECHECK_HOURS", default=24.0)
# What a FHIR server declares (conditional create, Provenance) is read again after this.
PSYFI_CAPABILITIES_MAX_AGE_HOURS = env.float("PSYFI_CAPABILITIES_MAX_AGE_HOURS", default=24.0)
PSYFI_DELIVERY_BACKOFF_BASE = env.float("PSYFI_DELIVERY_BACKOFF_BASE", default=30.0)
PSYFI_DELIVERY_BACKOFF_CAP = env.float("PSYFI_DELIVERY_BACKOFF_CAP", default=3600.0)
PSYFI_DELIVERY_TIMEOUT = env.float("PSYFI_DELIVERY_TIMEOUT", default=15.0)
PSYFI_DELIVERY_ALERT_AFTER_ATTEMPTS = env.int("PSYFI_DELIVERY_ALERT_AFTER_ATTEMPTS", default=3)
# A row in "sending" longer than this is taken to be a dead worker's.
PSYFI_DELIVERY_STALE_SECONDS = env.float("PSYFI_DELIVERY_STALE_SECONDS", default=300.0)
PSYFI_DELIVERY_SWEEP_SECONDS = env.float("PSYFI_DELIVERY_SWEEP_SECONDS", default=60.0)
# A manual connection's note not confirmed as filed in the EHR this many hours
# after signing raises one alert (integrations.manual_filing, run by the sweeper).
MANUAL_FILING_ALERT_HOURS = positive_number(
    "MANUAL_FILING_ALERT_HOURS", env.str("MANUAL_FILING_ALERT_HOURS", default="48")
)
# The built-in sandbox EHR at /sandbox/fhir/ (integrations.sandbox): mounted
# only when on; off in settings_production.
SANDBOX_EHR_ENABLED = env.bool("SANDBOX_EHR_ENABLED", default=True)
# Where `integrations_demo_setup` points the demo practice: the built-in sandbox.
PSYFI_SANDBOX_BASE_URL = env.str("PSYFI_SANDBOX_BASE_URL", default="http://127.0.0.1:8000/sandbox/fhir")
# Outbound egress policy (integrations.egress, docs/deployment.md): host names
# and CIDR blocks the worker may reach beyond the public internet. The demo
# allows loopback for the built-in sandbox; settings_production allows nothing
# private unless listed.
EHR_EGRESS_ALLOW = egress_allow_setting(
    "EHR_EGRESS_ALLOW", env.list("EHR_EGRESS_ALLOW", default=["127.0.0.0/8", "::1/128", "localhost"])
)
# Alerts (integrations.services.alerts, docs/operations.md): the address of
# this app in the link an alert email or webhook carries (never more).
PSYFI_PUBLIC_URL = env.str("PSYFI_PUBLIC_URL", default="http://127.0.0.1:8000")
PSYFI_ALERT_NOTIFY_MAX_ATTEMPTS = env.int("PSYFI_ALERT_NOTIFY_MAX_ATTEMPTS", default=10)
# How often the unusual-audit-pattern rules run over the recent audit log.
PSYFI_ALERT_RULES_MINUTES = env.float("PSYFI_ALERT_RULES_MINUTES", default=5.0)
# How often each connection's declared schema is checked against its mapping.
PSYFI_SCHEMA_DRIFT_HOURS = env.float("PSYFI_SCHEMA_DRIFT_HOURS", default=24.0)
CELERY_BEAT_SCHEDULE = {
    "audit-retention-report": {"task": "audit.retention_report", "schedule": timedelta(days=1)},
    "audit-anchor-checkpoints": {
        "task": "audit.anchor_checkpoints",
        "schedule": timedelta(minutes=AUDIT_ANCHOR_INTERVAL_MINUTES),
    },
    "integrations-delivery-sweep": {
        "task": "integrations.delivery_sweep",
        "schedule": PSYFI_DELIVERY_SWEEP_SECONDS,
    },
    # Counts of refused API keys after each minute's first (notes.api_keys).
    "notes-api-key-refusals-flush": {"task": "notes.api_key_refusals_flush", "schedule": timedelta(minutes=1)},
    # Alerts: the outbox sweeper, the unusual-pattern rules, the audit chain
    # check and the EHR schema-drift check (integrations.tasks).
    "integrations-alert-notifications-sweep": {
        "task": "integrations.alert_notifications_sweep",
        "schedule": PSYFI_DELIVERY_SWEEP_SECONDS,
    },
    "integrations-alert-rules-evaluate": {
        "task": "integrations.alert_rules_evaluate",
        "schedule": timedelta(minutes=PSYFI_ALERT_RULES_MINUTES),
    },
    "integrations-audit-chain-check": {"task": "integrations.audit_chain_check", "schedule": timedelta(days=1)},
    "integrations-schema-drift-check-all": {
        "task": "integrations.schema_drift_check_all",
        "schedule": timedelta(hours=PSYFI_SCHEMA_DRIFT_HOURS),
    },
}

# Operations (operations/, docs/deployment.md "Health and metrics").
# /metrics answers only a scrape with this bearer token; empty keeps it off.
METRICS_BEARER_TOKEN = env.str("METRICS_BEARER_TOKEN", default="")
# "json": one JSON object per log line with the request id (operations/logs.py);
# settings_production's default. "text" for the demo's terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be text or json.")

# Every handler carries the database-error filter: a PostgreSQL error quotes
# the values it refused (psyfi_review/log_filters.py). A handler added here
# must list it too.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "database_errors": {"()": "psyfi_review.log_filters.DatabaseErrorFilter"},
        "request_id": {"()": "operations.logs.RequestIdFilter"},
    },
    "formatters": {"json": {"()": "operations.logs.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["database_errors", "request_id"],
            **({"formatter": "json"} if LOG_FORMAT == "json" else {}),
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
    "loggers": {
        # Django's default handlers for its loggers (console when DEBUG,
        # mail_admins) would print a request's exception unfiltered, before it
        # reached ours: its records go to the root's handlers instead.
        "django": {"handlers": [], "propagate": True},
        # At DEBUG this logger writes every statement with its parameters.
        "django.db.backends": {"level": "INFO"},
        # fpdf2 names the characters its font lacks: pieces of a client's name
        # or a note (integrations/builders/pdf.py). Never logged.
        "fpdf": {"level": "ERROR"},
    },
}
