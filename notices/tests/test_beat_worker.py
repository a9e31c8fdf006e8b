"""The calendar runs by itself in production: a real ``celery beat`` publishes the scheduled jobs to Redis and a
real worker runs them against PostgreSQL.  The test only writes rows and watches; it never calls a job.

Beat's schedule is the production one (registrar_portal/settings.py) with every interval shortened to one second
(notices/tests/worker_settings.py); the e-mails are what a local SMTP server received.
"""

import datetime
import uuid

import pytest
from django.utils import timezone

from notices.models import Delivery, Notification
from students.tests.factories import CohortFactory, DepartmentFactory, SecretaryFactory, StudentFactory, UserFactory
from verification import services
from verification.models import Campaign, Checklist, Flag
from verification.tests.factories import CampaignFactory

from .delivery_harness import CeleryBeat, wait_until
from .test_delivery_worker import broker, lease, smtp, worker  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def student(department, cohort, name):
    person = StudentFactory(
        name=name, department=department, cohort=cohort, email=f"{uuid.uuid4().hex[:8]}@stu.example.edu.cn"
    )
    person.user = UserFactory(username=person.student_number)
    person.save(update_fields=["user"])
    return person


def test_beat_and_a_worker_close_a_due_campaign_close_returned_flags_and_send_the_due_reminder(
    worker,  # noqa: F811
    smtp,  # noqa: F811
    broker,  # noqa: F811
    tmp_path,
):
    department = DepartmentFactory(name="计算机学院")
    secretary = SecretaryFactory(departments=[department])
    # A campaign whose students' and departments' deadlines have just passed, not yet processed.
    past_cohort = CohortFactory()
    idle = student(department, past_cohort, "未核对")
    returned = student(department, past_cohort, "被退回")
    past = CampaignFactory(cohorts=[past_cohort])
    flagged = Checklist.objects.get(campaign=past, student=returned)
    services.checklist_confirm_all(checklist_id=flagged.pk, record_version=returned.version, by=returned.user)
    flag = services.field_flag(
        checklist_id=flagged.pk, field_code="XM", claimed_value="王晓明", record_version=returned.version,
        by=returned.user,
    )  # fmt: skip
    services.flag_transition(flag_id=flag.pk, to=Flag.Status.RETURNED, by=secretary, note="请上传身份证照片")
    now = timezone.now()
    Campaign.objects.filter(pk=past.pk).update(
        closes_at=now - datetime.timedelta(minutes=2), departments_close_at=now - datetime.timedelta(minutes=1)
    )
    # An open campaign whose "when it opens" reminder is due.
    open_cohort = CohortFactory(admission_year=2026)  # not the same cohort (the factory gets or creates)
    newcomer = student(department, open_cohort, "新同学")
    current = CampaignFactory(cohorts=[open_cohort])

    beat = CeleryBeat(worker, every=1, directory=tmp_path).start()
    try:
        worker.start()

        def log():
            return f"{worker.log()}\n--- beat log ---\n{beat.log()}"

        wait_until(
            lambda: Campaign.objects.filter(pk=past.pk, closed_at__isnull=False).exists(),
            timeout=20,
            message="beat and the worker to close the campaign",
            log=log,
        )
        wait_until(
            lambda: Flag.objects.filter(pk=flag.pk, status=Flag.Status.NOT_RESUBMITTED).exists(),
            timeout=10,
            message="the returned flag to close",
            log=log,
        )
        wait_until(
            lambda: {newcomer.email, returned.email} <= set(smtp.recorder.recipients()),
            timeout=15,
            message="the reminder and the flag's notice to be sent",
            log=log,
        )
    finally:
        beat.stop()

    assert Checklist.objects.get(campaign=past, student=idle).state == Checklist.State.OVERDUE
    assert Delivery.objects.get(campaign=current, student=newcomer).status == Delivery.Status.SENT
    assert Notification.objects.get(student=returned).status == Notification.Status.SENT
    # Beat runs every second: each student still got one message, not one per run.
    sent = {student.name: smtp.recorder.recipients().count(student.email) for student in (idle, returned, newcomer)}
    assert sent == {"未核对": 0, "被退回": 1, "新同学": 1}, [(to, m["Subject"]) for to, m in smtp.recorder.messages]
    assert not Delivery.objects.filter(campaign=past).exists()  # a closed campaign is not reminded
