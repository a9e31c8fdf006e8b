"""Reminders and digests through a real Redis broker and a real Celery worker the test starts.

What is asserted is what the local SMTP server and the local robot server
actually received, not what a patched function was called with.  The worker
is a separate process: rows are committed (``transactional_db``) and it reads
the same test database.  Each test has a queue of its own, so xdist workers
sharing one Redis do not take each other's messages.
"""

import datetime
import io
import threading
import uuid

import openpyxl
import pytest
from django.db import connection
from django.utils import timezone

from notices import digests, outbox, reminders, robots, selectors
from notices.models import Delivery, DepartmentChannel, Digest, DigestDelivery, ReminderStage
from notices.tasks import deliveries_send
from registrar_portal.celery import app
from students.tests.factories import CohortFactory, DepartmentFactory, SecretaryFactory, StudentFactory
from verification.models import Checklist
from verification.services import campaign_sync_students
from verification.tests.factories import CampaignFactory

from .delivery_harness import BrokerQueue, CeleryWorker, RobotServer, SmtpServer, free_port, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

LEASE = 30  # seconds; the killed-worker test shortens it
State = Checklist.State
DONE = [Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.SKIPPED]


# ---------------------------------------------------------------------------
# Fixtures: the servers, the broker switched on, the worker
# ---------------------------------------------------------------------------


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def robot():
    with RobotServer() as server:
        yield server


@pytest.fixture
def lease(request, settings):
    """The reminder lease, the same here and in the worker (a test may ask for another)."""
    settings.REMINDER_LEASE_SECONDS = getattr(request, "param", LEASE)
    return settings.REMINDER_LEASE_SECONDS


@pytest.fixture
def broker(settings, lease):
    """Tasks go to a real Redis queue of this test's own instead of running in-process."""
    name = f"rollcheck-test-{uuid.uuid4().hex[:12]}"
    saved = app.conf.task_always_eager, app.conf.task_default_queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    app.conf.task_default_queue = name
    queue = BrokerQueue(settings.REDIS_URL, name)
    yield queue
    app.conf.task_always_eager, app.conf.task_default_queue = saved
    queue.cleanup()


@pytest.fixture
def worker(transactional_db, broker, smtp, lease, tmp_path):
    """A worker for this test's queue, not started yet: the test decides when."""
    worker = CeleryWorker(queue=broker.name, smtp_port=smtp.port, lease_seconds=lease, log_path=tmp_path / "worker.log")
    yield worker
    worker.stop()


# ---------------------------------------------------------------------------
# The cast
# ---------------------------------------------------------------------------


def make_campaign(states: dict[str, str], *, department=None):
    """A campaign opened yesterday, one student per name in the given state; students by name."""
    cohort = CohortFactory()
    department = department or DepartmentFactory(name="计算机学院")
    students = {}
    for name in states:
        students[name] = StudentFactory(
            name=name, department=department, cohort=cohort, email=f"{uuid.uuid4().hex[:8]}@stu.example.edu.cn"
        )
    campaign = CampaignFactory(cohorts=[cohort])
    for name, state in states.items():
        Checklist.objects.filter(campaign=campaign, student=students[name]).update(state=state)
    reminders.reminder_plan_ensure(campaign=campaign)
    return campaign, students


def emails(students, *names) -> list[str]:
    return sorted(students[name].email for name in names)


def statuses(campaign) -> dict[str, str]:
    return dict(Delivery.objects.filter(campaign=campaign).values_list("student__name", "status"))


def all_done(campaign, count):
    return lambda: Delivery.objects.filter(campaign=campaign, status__in=DONE).count() == count


UNFINISHED_AND_FINISHED = {
    "未开始": State.NOT_STARTED,
    "核对中": State.IN_PROGRESS,
    "被退回": State.RETURNED,
    "已确认": State.CONFIRMED,
    "已报错": State.FLAGGED,
}


# ---------------------------------------------------------------------------
# Reminders
# ---------------------------------------------------------------------------


def test_a_reminder_reaches_exactly_the_students_who_have_not_finished(worker, smtp, broker):
    campaign, students = make_campaign({**UNFINISHED_AND_FINISHED, "刚完成": State.NOT_STARTED})

    # Due now: the "when it opens" stage (the campaign opened yesterday); nothing else yet.
    assert reminders.reminders_dispatch_due() == 4
    assert broker.length() == 1  # one chunk, not one message per student
    # Someone finishes between the dispatch and the send: the worker checks again.
    Checklist.objects.filter(campaign=campaign, student=students["刚完成"]).update(state=State.CONFIRMED)
    worker.start()
    wait_until(all_done(campaign, 4), log=worker.log, message="the deliveries to finish")

    assert smtp.recorder.recipients() == emails(students, "未开始", "核对中", "被退回")
    assert statuses(campaign) == {"未开始": "sent", "核对中": "sent", "被退回": "sent", "刚完成": "skipped"}
    stage = ReminderStage.objects.get(campaign=campaign, kind=ReminderStage.Kind.OPENS)
    assert stage.dispatched_at is not None
    assert not ReminderStage.objects.filter(campaign=campaign, dispatched_at__isnull=False).exclude(pk=stage.pk)

    by_recipient = {tos[0]: message for tos, message in smtp.recorder.messages}
    returned = by_recipient[students["被退回"].email]
    assert "请在" in returned["Subject"] and "学籍信息核对" in returned["Subject"]
    body = returned.get_content()
    assert "被退回同学" in body and "已被退回" in body and f"/check/{campaign.pk}/" in body
    assert "已被退回" not in by_recipient[students["未开始"].email].get_content()


def test_dispatching_twice_and_concurrently_sends_once(worker, smtp, broker):
    campaign, students = make_campaign(UNFINISHED_AND_FINISHED)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def dispatch():
        try:
            barrier.wait(timeout=10)
            results.append(reminders.reminders_dispatch_due())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert sorted(results) == [0, 3]  # one dispatcher wrote the rows, the other found nothing to do
    assert reminders.reminders_dispatch_due() == 0  # and a third run later: nothing either

    worker.start()
    wait_until(all_done(campaign, 3), log=worker.log, message="the deliveries to finish")
    # A task delivered twice (a retry, a redelivery): the rows are claimed, nothing goes out again.
    ids = list(Delivery.objects.filter(campaign=campaign).values_list("pk", flat=True))
    deliveries_send.delay(ids)
    deliveries_send.delay(ids)
    broker.wait_drained(log=worker.log)

    assert smtp.recorder.recipients() == emails(students, "未开始", "核对中", "被退回")
    assert Delivery.objects.filter(campaign=campaign).count() == 3
    assert set(Delivery.objects.filter(campaign=campaign).values_list("attempts", flat=True)) == {1}


@pytest.mark.parametrize("lease", [2], indirect=True)
def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(lease, worker, smtp, broker):
    names = [f"学生{n}" for n in range(1, 7)]
    campaign, students = make_campaign(dict.fromkeys(names, State.NOT_STARTED))
    # The third message is held at RCPT: the kill comes before the server accepts it.
    smtp.recorder.hold_at = 3

    reminders.reminders_dispatch_due()
    worker.start()
    assert smtp.recorder.holding.wait(timeout=20), worker.log()
    worker.kill()
    smtp.recorder.release.set()

    assert len(smtp.recorder.messages) == 2
    counts = dict.fromkeys(Delivery.Status.values, 0) | selectors.delivery_counts(campaign=campaign)
    assert (counts["sent"], counts["sending"], counts["pending"]) == (2, 1, 3)

    # A new worker; the beat's requeue, once the lease has passed, finds the claimed
    # row and the ones the dead task never reached.
    worker.start()
    interrupted = Delivery.objects.get(campaign=campaign, status=Delivery.Status.SENDING)
    wait_until(lambda: timezone.now() > interrupted.claimed_at + datetime.timedelta(seconds=lease), message="the lease")
    assert outbox.requeue_due() == 4
    wait_until(all_done(campaign, 6), log=worker.log, message="the deliveries to finish")

    assert smtp.recorder.recipients() == emails(students, *names)  # each exactly once
    assert set(statuses(campaign).values()) == {"sent"}
    interrupted.refresh_from_db()
    assert interrupted.attempts == 2


def test_smtp_answering_451_is_retried_with_backoff_then_shows_as_failed(worker, smtp, broker):
    campaign, students = make_campaign({"总被拒": State.NOT_STARTED, "第二次成功": State.IN_PROGRESS})
    unlucky, lucky = students["总被拒"], students["第二次成功"]
    smtp.recorder.refuse = {unlucky.email: None, lucky.email: 1}  # always; only the first time

    reminders.reminders_dispatch_due()
    worker.start()
    retry_until_failed(campaign, unlucky, broker, worker, reason="451")

    sent = Delivery.objects.get(student=lucky)
    assert (sent.status, sent.attempts, sent.last_error) == (Delivery.Status.SENT, 2, "")
    assert smtp.recorder.recipients() == [lucky.email]  # once, after its retry
    assert smtp.recorder.attempts == {unlucky.email: outbox.MAX_ATTEMPTS, lucky.email: 2}


def test_an_smtp_server_refusing_connections_is_retried_then_shows_as_failed(worker, smtp, broker):
    campaign, students = make_campaign({"未开始": State.NOT_STARTED})
    worker.env["EMAIL_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there

    reminders.reminders_dispatch_due()
    worker.start()
    retry_until_failed(campaign, students["未开始"], broker, worker, reason="ConnectionRefusedError")
    assert smtp.recorder.messages == []


def retry_until_failed(campaign, student, broker, worker, *, reason):
    """Each attempt fails and is put off by the next backoff; the beat (told the time) queues it again."""
    for attempt, backoff in enumerate(outbox.BACKOFF, start=1):
        wait_until(
            lambda attempt=attempt: (
                broker.drained()
                and Delivery.objects.filter(student=student, attempts=attempt, status=Delivery.Status.PENDING).exists()
            ),
            log=worker.log,
            message=f"attempt {attempt} to fail",
        )
        row = Delivery.objects.get(student=student)
        assert row.next_attempt_at - row.claimed_at == backoff
        assert reason in row.last_error
        latest = max(Delivery.objects.filter(campaign=campaign).values_list("next_attempt_at", flat=True))
        outbox.requeue_due(now=latest + datetime.timedelta(seconds=1))
    wait_until(
        lambda: Delivery.objects.filter(student=student, status=Delivery.Status.FAILED).exists(),
        log=worker.log,
        message="the last attempt",
    )
    failed = Delivery.objects.get(student=student)
    assert failed.attempts == outbox.MAX_ATTEMPTS
    assert reason in failed.last_error


# ---------------------------------------------------------------------------
# Department digests
# ---------------------------------------------------------------------------


def digest_morning():
    """Today (local) at 10:00, after DIGEST_TIME, while the campaign is open."""
    return timezone.localtime().replace(hour=10, minute=0, second=0, microsecond=0)


def attachment_rows(message) -> list[tuple]:
    (part,) = [part for part in message.iter_attachments()]
    assert part.get_filename().endswith(".xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(part.get_content()), read_only=True)
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    workbook.close()
    return rows


def test_the_digest_goes_out_once_with_the_unverified_students_and_a_signed_dingtalk_summary(
    worker, smtp, robot, broker
):
    cs = DepartmentFactory(name="计算机学院")
    campaign, students = make_campaign({**UNFINISHED_AND_FINISHED, "逾期": State.OVERDUE}, department=cs)
    languages = DepartmentFactory(name="外国语学院")
    StudentFactory(name="别院学生", department=languages, cohort=campaign.cohorts.get())
    campaign_sync_students(campaign=campaign)
    secretaries = [SecretaryFactory(departments=[cs], email=f"sec{n}@cs.example.edu.cn") for n in range(2)]
    secretaries.append(SecretaryFactory(departments=[languages], email="sec@fl.example.edu.cn"))
    secret = "SEC" + uuid.uuid4().hex
    robot.secrets["/robot/send"] = secret
    DepartmentChannel.objects.create(
        department=cs, robot="dingtalk", webhook_url=robot.url("/robot/send?access_token=cs"), signing_secret=secret
    )
    DepartmentChannel.objects.create(
        department=languages, robot="wecom", webhook_url=robot.url("/cgi-bin/webhook/send?key=fl")
    )

    morning = digest_morning()
    assert digests.digests_build_due(now=morning) == 2
    assert digests.digests_build_due(now=morning + datetime.timedelta(hours=1)) == 0  # built once a day
    worker.start()
    wait_until(
        lambda: DigestDelivery.objects.exclude(status__in=DONE).count() == 0 and DigestDelivery.objects.count() == 5,
        log=worker.log,
        message="the digest deliveries",
    )
    assert set(DigestDelivery.objects.values_list("status", flat=True)) == {"sent"}

    assert smtp.recorder.recipients() == sorted(s.email for s in secretaries)
    by_recipient = {tos[0]: message for tos, message in smtp.recorder.messages}
    rows = attachment_rows(by_recipient["sec0@cs.example.edu.cn"])
    assert rows[3] == ("院系", "班级", "学号", "姓名", "状态", "联系电话")
    unverified = ["未开始", "核对中", "被退回", "逾期"]
    labels = dict(State.choices)
    expected = sorted(
        (
            "计算机学院",
            students[name].class_name,
            students[name].student_number,
            name,
            str(labels[UNFINISHED_AND_FINISHED.get(name, State.OVERDUE)]),
            students[name].phone,
        )
        for name in unverified
    )
    assert sorted(rows[4:]) == expected
    assert attachment_rows(by_recipient["sec1@cs.example.edu.cn"])[4:] == rows[4:]
    assert [row[3] for row in attachment_rows(by_recipient["sec@fl.example.edu.cn"])[4:]] == ["别院学生"]

    (ding,) = robot.posts_to("/robot/send")
    assert ding["signed"] is True
    assert ding["query"]["access_token"] == ["cs"]
    assert ding["body"]["msgtype"] == "markdown"
    assert "计算机学院" in ding["body"]["markdown"]["title"]
    assert "已完成 2 / 6 人" in ding["body"]["markdown"]["text"]
    (wecom,) = robot.posts_to("/cgi-bin/webhook/send")
    assert wecom["signed"] is None and "外国语学院" in wecom["body"]["markdown"]["content"]
    # The files are also kept for download.
    assert Digest.objects.get(department=cs).row_count == 4


def test_a_refusing_robot_is_retried_then_the_delivery_fails(worker, robot, broker):
    campaign, _students = make_campaign({"未开始": State.NOT_STARTED})
    department = campaign.checklists.get().student.department
    DepartmentChannel.objects.create(department=department, robot="wecom", webhook_url=robot.url("/hook?key=x"))
    robot.errcode = 93000

    digests.digests_build_due(now=digest_morning())
    worker.start()
    delivery = DigestDelivery.objects.get()
    for attempt in range(1, outbox.MAX_ATTEMPTS):
        wait_until(
            lambda attempt=attempt: DigestDelivery.objects.filter(
                pk=delivery.pk, attempts=attempt, status=Delivery.Status.PENDING
            ).exists(),
            log=worker.log,
            message=f"robot attempt {attempt}",
        )
        row = DigestDelivery.objects.get(pk=delivery.pk)
        # The same backoff as reminders: one retry policy for every outgoing message.
        assert row.next_attempt_at - row.claimed_at == outbox.BACKOFF[attempt - 1]
        outbox.requeue_due(now=row.next_attempt_at + datetime.timedelta(seconds=1))
    wait_until(
        lambda: DigestDelivery.objects.filter(pk=delivery.pk, status=Delivery.Status.FAILED).exists(),
        log=worker.log,
        message="the robot delivery to fail",
    )
    row = DigestDelivery.objects.get(pk=delivery.pk)
    assert row.attempts == outbox.MAX_ATTEMPTS and "errcode 93000" in row.last_error
    assert len(robot.posts_to("/hook")) == outbox.MAX_ATTEMPTS


def test_a_robot_over_its_minute_budget_gets_the_post_once_the_minute_has_passed(worker, robot, broker):
    """19 posts of the last minute are on record; two more digests: one goes now, one waits."""
    campaign, _students = make_campaign({"甲": State.NOT_STARTED})
    url = robot.url("/shared-robot?key=s")
    first, second = DepartmentFactory(name="甲院"), DepartmentFactory(name="乙院")
    cohort = campaign.cohorts.get()
    for department in (first, second):
        StudentFactory(department=department, cohort=cohort)
        DepartmentChannel.objects.create(department=department, robot="wecom", webhook_url=url)
    campaign_sync_students(campaign=campaign)
    worker.start()
    # Earlier posts by other departments' digests sharing this robot, 55 s ago.
    earlier = timezone.now() - datetime.timedelta(seconds=55)
    history = DepartmentFactory(name="丙院")
    for day in range(19):
        digest = Digest.objects.create(
            department=history, campaign=campaign, day=datetime.date(2020, 1, 1) + datetime.timedelta(days=day)
        )
        DigestDelivery.objects.create(
            digest=digest,
            channel="robot",
            recipient=robots.recipient_key(url),
            status="sent",
            claimed_at=earlier,
            attempts=1,
        )

    morning = digest_morning()
    for department in (first, second):
        digests.digest_build(department_id=department.pk, campaign_id=campaign.pk, day=morning.date())
    wait_until(lambda: len(robot.posts_to("/shared-robot")) == 2, timeout=30, log=worker.log, message="two posts")

    posted = sorted(post["at"] for post in robot.posts_to("/shared-robot"))
    budget_back = earlier.timestamp() + 60
    assert posted[0] < budget_back  # the 20th of the minute: at once
    assert posted[1] >= budget_back  # the 21st: only once the oldest has left the window
    claims = sorted(
        DigestDelivery.objects.filter(recipient=robots.recipient_key(url)).values_list("claimed_at", flat=True)
    )
    assert all(
        later - earlier_claim >= datetime.timedelta(seconds=60)
        for earlier_claim, later in zip(claims, claims[20:], strict=False)
    )
