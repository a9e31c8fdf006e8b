"""Test settings: the real settings, made fast and self-contained."""

import os

os.environ.setdefault("DEBUG", "1")

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Tests name the channels they use; the embedded default adds the console channel.
REMINDER_CHANNELS = ["email"]
PRIVATE_ROOT = BASE_DIR / "var" / "test-private" / str(os.getpid())  # noqa: F405
SECURE_SSL_REDIRECT = False
