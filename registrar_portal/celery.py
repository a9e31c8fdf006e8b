"""Celery application, and the one way the portal queues work: ``enqueue``.

With ``REDIS_URL`` unset the settings make every task run in-process
(``task_always_eager``), so the portal works on a laptop with no broker.

Work is queued only after the transaction that wrote its rows has committed,
and a broker that is down never turns a committed request into an error: the
rows are the source of truth, and the beat job that owns them (the outbox's
requeue, for example) queues them again once the broker is back.  Code queues
through ``enqueue`` / ``enqueue_on_commit`` (or a task's ``delay_on_commit``,
which uses them), never ``.delay()`` / ``.apply_async()`` in a request;
registrar_portal/tests/test_celery.py checks the source for that.
"""

import logging
import os

from celery import Celery
from celery.contrib.django.task import DjangoTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registrar_portal.settings")

logger = logging.getLogger(__name__)

# A broker that refuses connections fails the publish in well under a second
# instead of holding the request (kombu's default retries for longer).
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def enqueue(task, *args, countdown: float | None = None, **kwargs) -> bool:
    """Queue ``task(*args, **kwargs)``; False, logged, when the broker cannot take it.

    In-process (no broker) the task runs here and its own errors propagate as
    before: only a failure to hand the message to the broker is swallowed.
    """
    if task.app.conf.task_always_eager:
        task.apply_async(args, kwargs, countdown=countdown)
        return True
    try:
        task.apply_async(args, kwargs, countdown=countdown, retry=True, retry_policy=PUBLISH_RETRY)
    except Exception as exc:  # kombu's OperationalError, a refused socket, a full Redis …
        logger.warning("could not queue %s%r: %s: %s", task.name, args, type(exc).__name__, exc)
        return False
    return True


def enqueue_on_commit(task, *args, on_failure=None, **kwargs) -> None:
    """``enqueue`` once the current transaction commits; ``on_failure()`` runs if the broker refused it."""
    from django.db import transaction

    def queue():
        if not enqueue(task, *args, **kwargs) and on_failure is not None:
            on_failure()

    transaction.on_commit(queue)


class SafeTask(DjangoTask):
    """DjangoTask whose ``delay_on_commit`` goes through ``enqueue``: never an error after the commit."""

    def delay_on_commit(self, *args, **kwargs) -> None:
        enqueue_on_commit(self, *args, **kwargs)

    def apply_async_on_commit(self, args=None, kwargs=None, countdown=None) -> None:
        enqueue_on_commit(self, *(args or ()), countdown=countdown, **(kwargs or {}))


app = Celery("registrar_portal", task_cls=SafeTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
