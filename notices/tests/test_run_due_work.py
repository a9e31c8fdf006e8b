"""``manage.py run_due_work``: beat's jobs without beat, for the embedded setup and cron-only installs."""

import datetime
import json
import uuid
import zoneinfo
from io import StringIO

import pytest
from django.core.management import call_command

from notices import reminders
from notices.models import Delivery
from students.tests.factories import CohortFactory, DepartmentFactory, StudentFactory
from verification.models import Campaign, Checklist
from verification.tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
OPENS = datetime.datetime(2026, 9, 1, 8, 0, tzinfo=SHANGHAI)
CLOSES = datetime.datetime(2026, 9, 30, 17, 0, tzinfo=SHANGHAI)


def run(capture) -> dict:
    out = StringIO()
    with capture(execute=True):
        call_command("run_due_work", "--format", "json", stdout=out)
    return json.loads(out.getvalue())


def test_one_run_sends_the_due_stage_and_a_later_run_closes_the_campaign(
    time_machine, mailoutbox, django_capture_on_commit_callbacks
):
    time_machine.move_to(OPENS - datetime.timedelta(days=2), tick=False)
    cohort = CohortFactory()
    department = DepartmentFactory()
    students = [
        StudentFactory(department=department, cohort=cohort, email=f"{uuid.uuid4().hex[:8]}@stu.edu") for _ in range(2)
    ]
    campaign = CampaignFactory(opens_at=OPENS, closes_at=CLOSES, cohorts=[cohort])
    reminders.reminder_plan_ensure(campaign=campaign)

    time_machine.move_to(OPENS + datetime.timedelta(minutes=1), tick=False)
    report = run(django_capture_on_commit_callbacks)
    assert set(report) >= {"campaigns-close-due", "reminders-dispatch-due", "digests-build-due", "outbox-requeue-due"}
    assert sorted(message.to[0] for message in mailoutbox) == sorted(s.email for s in students)
    # Again at once: nothing twice.
    run(django_capture_on_commit_callbacks)
    assert len(mailoutbox) == len(students)
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == len(students)

    time_machine.move_to(CLOSES + datetime.timedelta(minutes=10), tick=False)
    report = run(django_capture_on_commit_callbacks)
    assert report["campaigns-close-due"] >= 1
    campaign.refresh_from_db()
    assert campaign.closed_at is not None
    assert set(Checklist.objects.filter(campaign=campaign).values_list("state", flat=True)) == {Checklist.State.OVERDUE}
    assert Campaign.objects.filter(pk=campaign.pk, closed_at__isnull=False).exists()


def test_a_failing_job_does_not_stop_the_others(settings, django_capture_on_commit_callbacks):
    settings.CELERY_BEAT_SCHEDULE = {
        "broken": {"task": "notices.tests.test_run_due_work.no_such_task", "schedule": 60.0},
        **settings.CELERY_BEAT_SCHEDULE,
    }
    report = run(django_capture_on_commit_callbacks)
    assert "error" in report["broken"]
    assert report["outbox-requeue-due"] == 0
