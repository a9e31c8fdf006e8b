"""Queueing work: one safe way, so a broker that is down never turns a committed request into an error."""

import re
from pathlib import Path

import pytest

from registrar_portal.celery import app, enqueue

ROOT = Path(__file__).resolve().parents[2]
ran = []


@app.task(name="registrar_portal.tests.test_celery.note")
def note(value):
    ran.append(value)
    return value


@pytest.fixture(autouse=True)
def _clean():
    ran.clear()
    yield
    ran.clear()


def test_with_the_broker_refusing_connections_enqueue_logs_and_answers_false(broker_down, caplog):
    assert enqueue(note, "lost") is False
    assert "could not queue registrar_portal.tests.test_celery.note" in caplog.text
    assert "Connection refused" in caplog.text
    assert ran == []


@pytest.mark.django_db
def test_delay_on_commit_with_the_broker_down_does_not_raise_after_the_commit(
    broker_down, caplog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        note.delay_on_commit("after commit")
    assert len(callbacks) == 1  # it ran, and raised nothing
    assert "could not queue registrar_portal.tests.test_celery.note" in caplog.text


def test_in_process_enqueue_runs_the_task_at_once():
    assert enqueue(note, "here") is True
    assert ran == ["here"]


# What publishes to the broker (``delay_on_commit`` is safe: SafeTask routes it through ``enqueue``).
DIRECT = re.compile(r"\.(delay|apply_async|send_task)\(")
SKIP = {"bench", "e2e", "node_modules", "var", "static", "staticfiles", "locale", "templates", "docs"}


def test_no_code_queues_a_task_except_through_the_safe_helper():
    """Tests and benches may; the portal's own code goes through ``enqueue`` / ``enqueue_on_commit``."""
    offenders = []
    folders = [f for f in ROOT.iterdir() if f.is_dir() and not f.name.startswith(".") and f.name not in SKIP]
    for path in sorted(path for folder in folders for path in folder.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if "tests" in relative.parts:
            continue
        if relative == Path("registrar_portal/celery.py"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if DIRECT.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


@pytest.mark.django_db
def test_with_the_broker_down_a_review_still_answers_and_its_webhook_waits_for_the_requeue(
    client, department, secretary, broker_down, caplog, django_capture_on_commit_callbacks
):
    """Issue 11 item 9 beyond "remind now": a flag moved on the review page queues a webhook after its commit."""
    from django.urls import reverse
    from django.utils import timezone

    from notices.models import WebhookDelivery, WebhookEndpoint
    from notices.webhooks import webhook_endpoint_create
    from verification import services
    from verification.models import Checklist, Flag
    from verification.tests.factories import CampaignFactory, student_with_account

    endpoint, _secret = webhook_endpoint_create(
        name="教务系统",
        url="https://xg.example.edu.cn/hook?token=abc123",
        events=[WebhookEndpoint.Event.FLAG_STATUS_CHANGED],
    )
    student = student_with_account(department=department)
    campaign = CampaignFactory(cohorts=[student.cohort])
    flag = services.field_flag(
        checklist_id=Checklist.objects.get(campaign=campaign, student=student).pk,
        field_code="MZ",
        claimed_value="回族" if student.ethnicity != "回族" else "汉族",
        record_version=student.version,
        by=student.user,
    )
    client.force_login(secretary)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("workspace:review_act"), {"flags": [flag.pk], "action": "forward"})

    assert response.status_code == 302
    assert Flag.objects.get(pk=flag.pk).status == Flag.Status.FORWARDED
    assert "could not queue notices.tasks" in caplog.text
    waiting = WebhookDelivery.objects.filter(endpoint=endpoint, status=WebhookDelivery.Status.PENDING)
    assert waiting.exists() and all(row.next_attempt_at <= timezone.now() for row in waiting)  # due at the requeue
