"""Settings of the Celery worker that the delivery tests start: the real settings, one queue per test.

The queue is the worker's default too, so a task the worker itself queues (a
robot post deferred to the next minute) comes back to the same test.
"""

import os

from registrar_portal.settings import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = os.environ["ROLLCHECK_TEST_QUEUE"]
# No remote-control mailbox: nothing here uses it, and it leaves keys in Redis.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# As in the tests' own settings: e-mail only, so a refused e-mail fails instead of falling back to the console.
REMINDER_CHANNELS = ["email"]

# The beat the calendar test starts (notices/tests/test_beat_worker.py): the calendar's jobs every few
# seconds instead of every few minutes, and only those, so the test sees them run within its time.
if os.environ.get("ROLLCHECK_BEAT_EVERY"):
    CELERY_BEAT_SCHEDULE = {
        name: {**entry, "schedule": float(os.environ["ROLLCHECK_BEAT_EVERY"])}
        for name, entry in CELERY_BEAT_SCHEDULE.items()  # noqa: F405
        if name in ("campaigns-close-due", "reminders-dispatch-due", "outbox-requeue-due")
    }
