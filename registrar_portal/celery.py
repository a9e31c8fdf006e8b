"""Celery application.

With ``REDIS_URL`` unset the settings make every task run in-process
(``task_always_eager``), so the portal works on a laptop with no broker.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registrar_portal.settings")

# DjangoTask gives every task delay_on_commit(), so work is only queued once
# the transaction that produced its ids has committed.
app = Celery("registrar_portal", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
