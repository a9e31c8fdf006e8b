"""The outbox's own rules, in-process: one retry policy, permanent failures, and channels plugged in by a class.

The real-worker tests (a killed worker, a double dispatch, SMTP 451 and a refusing
robot through Redis) are in test_delivery_worker.py.
"""

import uuid

import pytest
from django.utils import timezone

from notices import outbox, reminders
from notices.models import Delivery, ReminderStage
from students.tests.factories import CohortFactory, StudentFactory
from verification.tests.factories import CampaignFactory

from .delivery_harness import SmtpServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def stage(department):
    """A campaign open now and a manual stage, not dispatched: the tests write and send its rows."""
    cohort = CohortFactory()
    students = [
        StudentFactory(name=name, department=department, cohort=cohort, email=f"{uuid.uuid4().hex[:8]}@stu.edu")
        for name in ("甲", "乙")
    ]
    campaign = CampaignFactory(cohorts=[cohort])
    return ReminderStage.objects.create(
        campaign=campaign, kind=ReminderStage.Kind.MANUAL, send_at=timezone.now(), student_ids=[s.pk for s in students]
    )


def rows_of(stage, channel="email") -> list[int]:
    students = stage.campaign.checklists.values_list("student_id", flat=True)
    return [
        Delivery.objects.create(campaign=stage.campaign, stage=stage, student_id=pk, channel=channel).pk
        for pk in students
    ]


def test_a_mailbox_that_does_not_exist_fails_at_once_without_retries(stage, settings):
    ids = rows_of(stage)
    gone, fine = Delivery.objects.get(pk=ids[0]).student, Delivery.objects.get(pk=ids[1]).student
    with SmtpServer() as smtp:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", smtp.port, False
        smtp.recorder.refuse = {gone.email: None}
        smtp.recorder.refusal = "550 5.1.1 No such user here"

        assert outbox.send("reminder", ids) == {"sent": 1, "failed": 1, "retry": 0, "skipped": 0, "deferred": 0}
        assert outbox.requeue_due(now=timezone.now() + outbox.BACKOFF[-1] * 2) == 0  # nothing to retry

    failed = Delivery.objects.get(student=gone)
    assert (failed.status, failed.attempts) == (Delivery.Status.FAILED, 1)
    assert "550" in failed.last_error
    assert smtp.recorder.recipients() == [fine.email]


class Recorder(outbox.Channel):
    """A channel as the next ones will be: a name, who it reaches, and a send."""

    name = "recorder"
    label = "记录"
    unreachable = "没有登记"
    sent: list = []

    def address(self, recipient) -> str:
        return recipient.name if getattr(recipient, "name", "") == "甲" else ""

    def send(self, message):
        self.sent.append((message.to, message.subject))


@pytest.fixture
def recorder():
    outbox.register(Recorder)
    Recorder.sent = []
    yield Recorder
    del outbox.CHANNELS[Recorder.name]


def test_a_new_channel_plugs_in_by_registering_one_class(stage, recorder, mailoutbox):
    ids = rows_of(stage, channel=recorder.name)

    outbox.send("reminder", ids)
    outbox.send("reminder", ids)  # a second delivery of the same task: claimed already, nothing again

    assert [to for to, _subject in recorder.sent] == ["甲"]
    assert "学籍信息核对" in recorder.sent[0][1]
    statuses = dict(Delivery.objects.values_list("student__name", "status"))
    assert statuses == {"甲": Delivery.Status.SENT, "乙": Delivery.Status.SKIPPED}
    assert Delivery.objects.get(student__name="乙").last_error == "没有登记"
    assert mailoutbox == []  # the rows' channel, not e-mail
    assert Delivery.objects.get(student__name="甲").channel_label == "记录"


def test_a_reminder_falls_back_to_the_next_channel_once_and_the_log_shows_both(
    stage, recorder, settings, mailoutbox, django_capture_on_commit_callbacks
):
    """The school's order: the recorder first, then e-mail.  乙 cannot be reached by the recorder: e-mail it is."""
    settings.REMINDER_CHANNELS = [recorder.name, "email"]
    with django_capture_on_commit_callbacks(execute=True):
        assert reminders.stage_dispatch(stage_id=stage.pk) == 2

    assert [to for to, _subject in recorder.sent] == ["甲"]
    yi = Delivery.objects.get(student__name="乙", channel="email").student
    assert [m.to for m in mailoutbox] == [[yi.email]]
    log = sorted(Delivery.objects.values_list("student__name", "channel", "status"))
    assert log == [("乙", "email", "sent"), ("乙", "recorder", "skipped"), ("甲", "recorder", "sent")]

    # Sending every row again (a redelivered task, the requeue) sends nothing and writes no other row.
    ids = list(Delivery.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        outbox.send("reminder", ids)
    assert len(recorder.sent) == 1 and len(mailoutbox) == 1 and Delivery.objects.count() == 3


def test_a_row_of_an_unknown_channel_fails_instead_of_looping(stage):
    ids = rows_of(stage, channel="pigeon")
    assert outbox.send("reminder", ids)["failed"] == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.FAILED}
