"""Settings of the HTTP bench's reference server: a bare Django behind only its session and auth middleware.

Same database, apps, session cookie and view as ``bench_site``; nothing of the
portal's middleware (security headers, CSRF, language, OTP, session policy,
audit log, CSP, no-store, axes, whitenoise).
"""

from bench_site import *  # noqa: F403

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
