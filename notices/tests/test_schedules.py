"""What happens as time moves on: the reminder plan's stages, and the robots' minute budget.

These run in-process (Celery eager, e-mail in ``mail.outbox``) with the clock
moved by time-machine; the group robot is still a real local HTTP server.
The real-worker tests are in test_delivery_worker.py.
"""

import datetime
import uuid
import zoneinfo

import pytest
from django.db.models import Count

from notices import digests, outbox, reminders, robots
from notices.models import Delivery, DepartmentChannel, DigestDelivery, ReminderStage
from students.tests.factories import CohortFactory, DepartmentFactory, StudentFactory
from verification.models import Checklist
from verification.tests.factories import CampaignFactory

from .delivery_harness import RobotServer

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
OPENS = datetime.datetime(2026, 9, 1, 8, 0, tzinfo=SHANGHAI)
CLOSES = datetime.datetime(2026, 9, 30, 17, 0, tzinfo=SHANGHAI)
MINUTE = datetime.timedelta(minutes=1)
DAY = datetime.timedelta(days=1)
State = Checklist.State


@pytest.fixture
def robot():
    with RobotServer() as server:
        yield server


def campaign_with(names, *, opens=OPENS, closes=CLOSES):
    cohort = CohortFactory()
    department = DepartmentFactory(name="计算机学院")
    students = {
        name: StudentFactory(name=name, department=department, cohort=cohort, email=f"{uuid.uuid4().hex[:8]}@stu.edu")
        for name in names
    }
    campaign = CampaignFactory(opens_at=opens, closes_at=closes, cohorts=[cohort])
    reminders.reminder_plan_ensure(campaign=campaign)
    return campaign, students


def set_state(campaign, student, state):
    Checklist.objects.filter(campaign=campaign, student=student).update(state=state)


class Beat:
    """Runs the dispatcher at a given moment; tells which stages went out and to whom."""

    def __init__(self, campaign, students, time_machine, mailoutbox, capture):
        self.campaign, self.time_machine, self.outbox, self.capture = campaign, time_machine, mailoutbox, capture
        self.names = {student.email: name for name, student in students.items()}

    def at(self, moment) -> tuple[list[str], set[str]]:
        self.time_machine.move_to(moment, tick=False)
        before = len(self.outbox)
        dispatched = set(self.campaign.reminder_stages.filter(dispatched_at__isnull=False).values_list("pk", flat=True))
        with self.capture(execute=True):
            reminders.reminders_dispatch_due()
        stages = self.campaign.reminder_stages.filter(dispatched_at__isnull=False).exclude(pk__in=dispatched)
        labels = [f"{stage.kind}:{stage.days_before}" for stage in stages.order_by("send_at")]
        recipients = [self.names[message.to[0]] for message in self.outbox[before:]]
        assert len(recipients) == len(set(recipients))  # nobody twice in one run
        return labels, set(recipients)


@pytest.fixture
def beat_for(time_machine, mailoutbox, django_capture_on_commit_callbacks):
    return lambda campaign, students: Beat(
        campaign, students, time_machine, mailoutbox, django_capture_on_commit_callbacks
    )


def test_the_plan_fires_each_stage_at_its_time_and_only_that_stage(db, time_machine, beat_for):
    time_machine.move_to(OPENS - 2 * DAY, tick=False)
    campaign, students = campaign_with(["甲", "乙", "丙"])
    set_state(campaign, students["丙"], State.FLAGGED)
    beat = beat_for(campaign, students)

    assert beat.at(OPENS - 60 * MINUTE) == ([], set())  # not open yet
    assert beat.at(OPENS + MINUTE) == (["opens:0"], {"甲", "乙"})
    assert beat.at(OPENS + 3 * 60 * MINUTE) == ([], set())  # sent once, not every run
    set_state(campaign, students["乙"], State.CONFIRMED)

    assert beat.at(CLOSES - 7 * DAY - MINUTE) == ([], set())
    assert beat.at(CLOSES - 7 * DAY + MINUTE) == (["before_close:7"], {"甲"})
    assert beat.at(CLOSES - 3 * DAY - MINUTE) == ([], set())
    assert beat.at(CLOSES - 3 * DAY + MINUTE) == (["before_close:3"], {"甲"})
    # 丙's flag is returned to them: unfinished again, reminded again.
    set_state(campaign, students["丙"], State.RETURNED)
    assert beat.at(CLOSES - DAY + MINUTE) == (["before_close:1"], {"丙", "甲"})
    last_day_morning = CLOSES.replace(hour=9, minute=0)
    assert beat.at(last_day_morning - MINUTE) == ([], set())
    assert beat.at(last_day_morning + MINUTE) == (["last_day:0"], {"丙", "甲"})
    assert beat.at(CLOSES + MINUTE) == ([], set())  # closed

    assert Delivery.objects.filter(campaign=campaign).count() == 8
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def test_stages_due_together_send_only_the_latest(db, time_machine, beat_for):
    """A campaign saved late (or the beat down for days): one reminder, not three in a minute."""
    now = CLOSES - 2 * DAY
    time_machine.move_to(now, tick=False)
    campaign, students = campaign_with(["甲", "乙"], opens=now - 10 * DAY)
    beat = beat_for(campaign, students)

    assert beat.at(now + MINUTE) == (["opens:0", "before_close:7", "before_close:3"], {"乙", "甲"})
    written = dict(
        ReminderStage.objects.filter(campaign=campaign, dispatched_at__isnull=False)
        .values_list("days_before")
        .annotate(n=Count("deliveries"))
    )
    assert written == {0: 0, 7: 0, 3: 2}  # the earlier two are marked done without writing anything
    assert beat.at(CLOSES - DAY + MINUTE) == (["before_close:1"], {"乙", "甲"})


def test_twenty_one_digests_to_one_robot_keep_within_twenty_a_minute(
    db, robot, time_machine, django_capture_on_commit_callbacks
):
    """21 departments share a group robot: 20 posts now, the 21st once the minute has passed."""
    morning = datetime.datetime(2026, 9, 10, 10, 0, tzinfo=SHANGHAI)
    time_machine.move_to(morning - DAY, tick=False)
    cohort = CohortFactory()
    url = robot.url("/cgi-bin/webhook/send?key=shared")
    for n in range(21):
        department = DepartmentFactory(name=f"第{n + 1:02d}学院")
        StudentFactory(department=department, cohort=cohort)
        DepartmentChannel.objects.create(department=department, robot="wecom", webhook_url=url)
    CampaignFactory(opens_at=morning - 5 * DAY, closes_at=morning + 20 * DAY, cohorts=[cohort])

    time_machine.move_to(morning, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert digests.digests_build_due() == 21
    assert len(robot.posts) == 20
    (waiting,) = DigestDelivery.objects.filter(status=Delivery.Status.PENDING)
    assert waiting.next_attempt_at == morning + datetime.timedelta(seconds=60.5)

    time_machine.move_to(morning + 30 * datetime.timedelta(seconds=1), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.requeue_due() == 0  # still inside the minute
    time_machine.move_to(morning + 61 * datetime.timedelta(seconds=1), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.requeue_due() == 1
    assert len(robot.posts) == 21

    # The robot's own view: no 60-second window holds more than 20 posts.
    times = sorted(post["at"] for post in robot.posts)
    assert all(later - first >= 60 for first, later in zip(times, times[20:], strict=False))
    assert set(DigestDelivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}
    # One summary per department per day: building again sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert digests.digests_build_due() == 0
    assert len(robot.posts) == 21


def test_the_robot_server_refuses_a_wrong_dingtalk_signature(robot):
    """The signature check in the worker tests is real: a wrong secret is refused, the right one passes."""
    robot.secrets["/robot/send"] = "SECright"
    url = robot.url("/robot/send?access_token=t")
    with pytest.raises(robots.RobotError, match="310000"):
        robots.post("dingtalk", url, "SECwrong", "标题", "正文")
    robots.post("dingtalk", url, "SECright", "标题", "正文")
    assert [post["signed"] for post in robot.posts] == [False, True]
