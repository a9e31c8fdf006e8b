"""``manage.py remind``: the operator's report, on a school like the demo (no e-mail, no phones, the console)."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from notices import reminders
from notices.models import Delivery, ReminderStage
from students.tests.factories import CohortFactory, StudentFactory
from verification.models import Checklist
from verification.tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_school(settings):
    """Four students as a CHSI roster gives them (no e-mail, no phone); one has finished; the embedded channels."""
    settings.REMINDER_CHANNELS = ["email", "console"]
    cohort = CohortFactory()
    students = [StudentFactory(cohort=cohort, email="", phone="") for _ in range(4)]
    campaign = CampaignFactory(cohorts=[cohort])
    Checklist.objects.filter(campaign=campaign, student=students[0]).update(state=Checklist.State.CONFIRMED)
    return campaign


@pytest.fixture
def remind(django_capture_on_commit_callbacks):
    """Run the command, its report as JSON; what it queues on commit runs, as in a real run."""

    def run(*args) -> dict:
        out = io.StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("remind", *map(str, args), "--format", "json", stdout=out)
        return json.loads(out.getvalue())

    return run


def report(students=0, console=0, email=0, unreachable=0, finished=0, already=0) -> dict:
    by_channel = {"sms": 0, "wecom": 0, "dingtalk": 0, "email": email, "console": console}
    return {"students": students, "by_channel": by_channel, "unreachable": unreachable,
            "skipped_finished": finished, "already_sent": already}  # fmt: skip


def test_a_dry_run_plans_every_unfinished_student_reachable_and_writes_nothing(remind, demo_school):
    stages = ReminderStage.objects.count()

    assert remind(demo_school.pk, "--now", "--dry-run") == report(students=3, console=3, finished=1)
    assert remind(demo_school.pk, "--dry-run") == report(students=3, console=3, finished=1)  # the due "opens" stage

    assert Delivery.objects.count() == 0
    assert ReminderStage.objects.count() == stages
    assert ReminderStage.objects.filter(dispatched_at__isnull=False).count() == 0


def test_remind_now_reaches_every_unfinished_student_on_the_console(remind, demo_school, caplog):
    with caplog.at_level("INFO", logger="notices.channels"):
        assert remind(demo_school.pk, "--now") == report(students=3, console=3, finished=1)

    sent = Delivery.objects.filter(channel="console", status=Delivery.Status.SENT)
    assert sent.count() == 3
    # E-mail was tried first and could not reach them: the log shows both, once each.
    assert Delivery.objects.filter(channel="email", status=Delivery.Status.SKIPPED).count() == 3
    assert len([r for r in caplog.records if r.name == "notices.channels"]) == 3


def test_the_due_stages_are_sent_once_and_a_second_run_reports_them_already_sent(remind, demo_school):
    opens = demo_school.reminder_stages.get(kind=ReminderStage.Kind.OPENS)

    assert remind(demo_school.pk) == report(students=3, console=3, finished=1)
    assert remind(demo_school.pk) == report()  # nothing due any more
    assert remind(demo_school.pk, "--stage", reminders.stage_name(opens)) == report(already=3)

    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 3


def test_a_named_stage_is_sent_now_even_before_it_is_due(remind, demo_school):
    stage = demo_school.reminder_stages.filter(kind=ReminderStage.Kind.BEFORE_CLOSE).order_by("days_before").last()

    assert remind(demo_school.pk, "--stage", reminders.stage_name(stage)) == report(students=3, console=3, finished=1)
    assert set(Delivery.objects.filter(status=Delivery.Status.SENT).values_list("stage_id", flat=True)) == {stage.pk}


def test_without_the_console_the_report_counts_the_unreachable(remind, demo_school, settings):
    settings.REMINDER_CHANNELS = ["email"]
    assert remind(demo_school.pk, "--now", "--dry-run") == report(students=3, unreachable=3, finished=1)


def test_an_unknown_stage_names_the_campaigns_stages(remind, demo_school):
    with pytest.raises(CommandError, match="before-7"):
        remind(demo_school.pk, "--stage", "tomorrow")
