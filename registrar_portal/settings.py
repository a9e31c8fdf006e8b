"""Roll Check settings: one module, driven by the environment.

Nothing set gives the embedded default (SQLite file, Celery tasks run
in-process, e-mail printed to the console).  ``DATABASE_URL`` and
``REDIS_URL`` switch to PostgreSQL and a real broker.  A ``.env`` file in the
project root is read too (``bin/start`` writes one for development).
"""

import importlib.util
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
# django-ninja (the REST API, verification/api.py) is not an installed app: that imported the whole
# library and pydantic (~0.5 s) in every process.  Its docs page's templates and static files are
# found by path instead, without importing it, and served locally (verification/api.py's docs).
NINJA_DIR = Path(importlib.util.find_spec("ninja").submodule_search_locations[0])

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# ------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if not DEBUG:
    # A production server must never fall back to a guessable key or accept any
    # Host header; refuse to start instead.
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off.")
else:
    SECRET_KEY = SECRET_KEY or "django-insecure-development-only-key-do-not-deploy"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "auditlog",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_cas_ng",
    "django_htmx",  # serves htmx itself (the student checklist answers a field in place)
    "students",
    "verification",
    "notices",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "registrar_portal.middleware.PortalLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # django-auditlog's middleware with our client address (it trusts the leftmost X-Forwarded-For).
    "registrar_portal.middleware.AuditlogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After messages: an expired session says why it ended.
    "registrar_portal.security.SessionPolicyMiddleware",
    # After OTPMiddleware and the session policy: staff with a TOTP device verify a token
    # before any page; registrar staff enrol one first when REQUIRE_2FA_FOR_REGISTRAR is on.
    "registrar_portal.security.SecondFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-csp's, with the policy built once per process.
    "registrar_portal.middleware.CSPMiddleware",
    "registrar_portal.security.NoStoreMiddleware",
    # Last, so that it sees the outcome of the sign-in views.
    "axes.middleware.AxesMiddleware",
]
if not DEBUG:
    # Production serves collected static files itself (development uses runserver's).
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "registrar_portal.urls"
WSGI_APPLICATION = "registrar_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates", NINJA_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "students.context_processors.portal",
                "notices.context_processors.unread",
                "registrar_portal.navigation.navigation",
            ],
        },
    },
]

# ------------------------------------------------------------------------------
# Database
# ------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A new PostgreSQL connection costs ~5 ms; keeping them is worth 6x on every
    # page (docs/performance.md §2).
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=600))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ------------------------------------------------------------------------------
# Authentication
# ------------------------------------------------------------------------------
AUTH_USER_MODEL = "students.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = [
    # Refuses sign-in while a username is locked out from an address.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Campus single sign-on (CAS); off unless CAS_SERVER_URL is set.
CAS_SERVER_URL = env.str("CAS_SERVER_URL", default="")
CAS_VERSION = env.str("CAS_VERSION", default="3")
CAS_CREATE_USER = False
CAS_REDIRECT_URL = "/"
CAS_LOGIN_MSG = None
CAS_LOGGED_MSG = None
AUTHENTICATION_BACKENDS.append("students.accounts.cas.CampusCASBackend")  # inert without CAS_SERVER_URL
# Sign-in from the campus WeCom / DingTalk app (notices/signin.py); inert until the school configures the app.
AUTHENTICATION_BACKENDS.append("notices.signin.CampusAppBackend")
# Lock a username only from the address that failed: a dormitory behind one NAT
# address must not be locked out by one person.  The lock lifts after a cool-off.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)  # hours
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_USERNAME_FORM_FIELD = "username"
# Attempts made while locked neither extend the lock nor count towards the caps below.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Every failure is kept (per username, for the caps below; pruned after SIGNIN_FAILURE_LOG_DAYS).
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# Adds the per-address and per-username caps (students/accounts/lockout.py).
AXES_HANDLER = "students.accounts.lockout.LockoutHandler"
# axes keeps the failed request's form data: never the claim secret, a name, a code or a password.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "name", "id_suffix", "token", "password1", "password2"]
# One client address for axes, the access log, exports and the audit log (students/network.py).
# TRUSTED_PROXY_COUNT = reverse proxies of ours in front of Django (docs/deploy.md "Client addresses");
# AXES_PROXY_COUNT is the older name of the same setting.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=env.int("AXES_PROXY_COUNT", default=0))
AXES_CLIENT_IP_CALLABLE = "students.network.client_ip"
# Failures from one address across all usernames within the cool-off (a dormitory NAT shares one address).
SIGNIN_ADDRESS_FAILURE_LIMIT = env.int("SIGNIN_ADDRESS_FAILURE_LIMIT", default=30)
# Failures for one username across all addresses within the window: a slower, longer lock against a
# distributed guesser of the claim secret; registrar staff see an entry in the access log.
SIGNIN_USERNAME_FAILURE_LIMIT = env.int("SIGNIN_USERNAME_FAILURE_LIMIT", default=20)
SIGNIN_USERNAME_WINDOW_HOURS = env.float("SIGNIN_USERNAME_WINDOW_HOURS", default=24)
SIGNIN_FAILURE_LOG_DAYS = 30
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# ------------------------------------------------------------------------------
# Internationalisation: Chinese by default, English available.
# ------------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
# The portal's English catalogue first; then Chinese overrides of Django's own messages (full-width colon
# after form labels, a password message Django's catalogue lacks): registrar_portal/django_zh/.
LOCALE_PATHS = [BASE_DIR / "locale", BASE_DIR / "registrar_portal" / "django_zh"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# ------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static", NINJA_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# whitenoise serves static files with far-future caching once collectstatic has run.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Uploaded rosters and evidence are personal data: they live outside any
# web-served folder and are only ever read by permission-checked views.
PRIVATE_ROOT = env.path("PRIVATE_ROOT", default=BASE_DIR / "var" / "private")
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# ------------------------------------------------------------------------------
# E-mail
# ------------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="学籍科 <registrar@localhost>")

# ------------------------------------------------------------------------------
# Celery
# ------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "campaigns-close-due": {"task": "verification.tasks.campaigns_close_due", "schedule": 300.0},
    "reminders-dispatch-due": {"task": "notices.tasks.reminders_dispatch_due", "schedule": 120.0},
    "digests-build-due": {"task": "notices.tasks.digests_build_due", "schedule": 300.0},
    # Retries, rate-deferred posts, sends lost with a worker or refused by a broker that was down.
    "outbox-requeue-due": {"task": "notices.tasks.outbox_requeue_due", "schedule": 60.0},
    "exports-purge-expired": {"task": "verification.tasks.exports_purge_expired", "schedule": 3600.0},
    "retention-purge": {"task": "verification.tasks.retention_purge", "schedule": 6 * 3600.0},
}

# ------------------------------------------------------------------------------
# The school and its roll-check policy
# ------------------------------------------------------------------------------
SCHOOL_NAME = env.str("SCHOOL_NAME", default="示范大学")
SCHOOL_CODE = env.str("SCHOOL_CODE", default="19999")
# Provinces differ on which corrections need provincial approval
# (docs/domain.md §6.2); CHSI codes listed here override the registry's default.
ROLL_PROVINCE_APPROVAL_FIELDS = env.list("ROLL_PROVINCE_APPROVAL_FIELDS", default=[])
# The review chain of a flag (docs/roles.md): its steps in order, ending with the registrar.
# "counsellor,department,registrar" puts the class's 辅导员 first; the default is department → registrar.
REVIEW_CHAIN = env.list("REVIEW_CHAIN", default=["department", "registrar"])
# On: flags on 专业代码/专业名称 go to the admissions office (招生办 reviewers) instead of the registrar
# after the department step; off: every flag stays with the registrar.
ADMISSIONS_REVIEW = env.bool("ADMISSIONS_REVIEW", default=False)
PORTAL_URL = env.str("PORTAL_URL", default="http://127.0.0.1:8000")
# How long an outbox send (reminder, digest, robot post) may stay claimed before it counts as lost (a killed worker).
REMINDER_LEASE_SECONDS = env.int("REMINDER_LEASE_SECONDS", default=600)
# The channels a reminder tries, in order (notices/outbox.py): the next one when a channel cannot reach a student.
# The registrar's 提醒渠道 page (notices.ChannelConfig) overrides it once a channel is enabled there.  The embedded
# setup (DEBUG, or no EMAIL_URL) ends with "console", which writes reminders to the log: nobody is unreachable.
REMINDER_CHANNELS = env.list(
    "REMINDER_CHANNELS", default=["email", "console"] if DEBUG or not env.str("EMAIL_URL", default="") else ["email"]
)
# No SMS in these hours (school time, HH:MM-HH:MM) unless the registrar allows it; "" sends at any hour.
SMS_QUIET_HOURS = env.str("SMS_QUIET_HOURS", default="22:00-08:00")
# SMS sent per minute by the whole portal (every worker together) unless the SMS settings on the 提醒渠道 page
# give the account's own limit; the rest wait for the next minute.  0: no limit.
SMS_PER_MINUTE = env.int("SMS_PER_MINUTE", default=600)
# When department digests go out each morning (local time, HH:MM).
DIGEST_TIME = env.str("DIGEST_TIME", default="07:30")
ROSTER_MAX_ROWS = env.int("ROSTER_MAX_ROWS", default=200_000)
ROSTER_MAX_UPLOAD_BYTES = env.int("ROSTER_MAX_UPLOAD_BYTES", default=100 * 1024 * 1024)
# Exports estimated at fewer rows than this are built inside the request; larger
# ones go to a Celery task.  Stored export files are deleted after this many hours.
EXPORT_INLINE_MAX_ROWS = env.int("EXPORT_INLINE_MAX_ROWS", default=5000)
EXPORT_RETENTION_HOURS = env.int("EXPORT_RETENTION_HOURS", default=24)
# Evidence files and revealed-ID records are deleted this long after a campaign closes.
RETENTION_DAYS = env.int("RETENTION_DAYS", default=180)

# ------------------------------------------------------------------------------
# Encryption at rest for ID numbers (docs/keys.md)
# ------------------------------------------------------------------------------
# Fernet keys, newest first: the first encrypts, all decrypt (rotation).
ID_NUMBER_KEYS = env.list("ID_NUMBER_KEYS", default=[])
# HMAC key for the searchable hash stored beside each encrypted ID number.
ID_NUMBER_HASH_KEY = env.str("ID_NUMBER_HASH_KEY", default="")
if not (ID_NUMBER_KEYS and ID_NUMBER_HASH_KEY):
    if not DEBUG:
        raise ImproperlyConfigured("ID_NUMBER_KEYS and ID_NUMBER_HASH_KEY must be set when DEBUG is off.")
    # Development only: keys derived from the development SECRET_KEY.
    import base64
    import hashlib

    _seed = hashlib.sha256(f"id-number-keys:{SECRET_KEY}".encode()).digest()
    ID_NUMBER_KEYS = ID_NUMBER_KEYS or [base64.urlsafe_b64encode(_seed).decode()]
    ID_NUMBER_HASH_KEY = ID_NUMBER_HASH_KEY or hashlib.sha256(b"hash:" + _seed).hexdigest()

# ------------------------------------------------------------------------------
# Security
# ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Sessions end after inactivity or a fixed lifetime, shorter for staff (registrar_portal/security.py).
SESSION_IDLE_SECONDS_STAFF = env.int("SESSION_IDLE_SECONDS_STAFF", default=30 * 60)
SESSION_MAX_SECONDS_STAFF = env.int("SESSION_MAX_SECONDS_STAFF", default=8 * 3600)
SESSION_IDLE_SECONDS_STUDENT = env.int("SESSION_IDLE_SECONDS_STUDENT", default=2 * 3600)
SESSION_MAX_SECONDS_STUDENT = env.int("SESSION_MAX_SECONDS_STUDENT", default=24 * 3600)
SESSION_COOKIE_AGE = max(SESSION_MAX_SECONDS_STAFF, SESSION_MAX_SECONDS_STUDENT)
# Registrar staff must use a second factor (TOTP) when this is on.
REQUIRE_2FA_FOR_REGISTRAR = env.bool("REQUIRE_2FA_FOR_REGISTRAR", default=not DEBUG)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="学籍核对")
# The admin lists TOTP devices without their secret keys or QR codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Content-Security-Policy: no inline script anywhere (django-csp).
from csp.constants import NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
# Audit trail of changes to records and flags; ID numbers are masked inside it.
AUDITLOG_INCLUDE_ALL_MODELS = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env.bool("HTTPS", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # A load balancer may probe over plain HTTP; the health check names no data.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # __Host- cookies are only sent over HTTPS, to this exact host, for the whole site.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# ------------------------------------------------------------------------------
# Logging
# ------------------------------------------------------------------------------
# One JSON line per event in production (LOG_FORMAT=json), plain text in development;
# ID numbers are masked in every record whatever wrote it.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_ids": {"()": "registrar_portal.logging.MaskIdNumbersFilter"}},
    "formatters": {
        "json": {"()": "registrar_portal.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["mask_ids"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
