"""The SMS account's per-minute limit: the outbox sends at most that many SMS a minute, all workers together.

The excess stays queued (PENDING, due when the minute has passed) and goes next minute: no message
is dropped and none is sent twice.  Counted from the rows in the database, so every worker sees
the same count; the concurrent case runs on PostgreSQL, where the count is taken under a lock.
"""

import datetime
import threading
import uuid
import zoneinfo

import pytest
from django.core.cache import cache
from django.db import connection

from notices import outbox, reminders
from notices.models import Delivery
from students.tests.factories import CohortFactory, StudentFactory
from verification.tests.factories import CampaignFactory

from .fake_providers import Fake
from .test_channels import configure, sends_of

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NOON = datetime.datetime(2026, 9, 10, 12, 0, tzinfo=SHANGHAI)


@pytest.fixture
def fake():
    cache.clear()
    with Fake() as server:
        yield server
    cache.clear()


def phones(fake) -> list[str]:
    return [request["params"]["PhoneNumbers"] for request in sends_of(fake, "sms", "aliyun")]


def campaign_of(count: int):
    cohort = CohortFactory()
    students = [StudentFactory(email="", cohort=cohort, phone=f"139000000{n:02d}") for n in range(count)]
    campaign = CampaignFactory(
        cohorts=[cohort], opens_at=NOON - datetime.timedelta(days=3), closes_at=NOON + datetime.timedelta(days=9)
    )
    return campaign, students


@pytest.mark.django_db
def test_sms_over_the_minute_limit_wait_for_the_next_minute_and_each_goes_once(
    fake, time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(NOON, tick=False)
    configure("sms", fake, provider="aliyun", options_per_minute=2)
    campaign, students = campaign_of(5)

    with django_capture_on_commit_callbacks(execute=True):
        stage = reminders.remind_now(
            campaign=campaign, student_ids=[s.pk for s in students], by=None, request_key=uuid.uuid4().hex
        )
    rows = Delivery.objects.filter(stage=stage)

    assert len(phones(fake)) == 2  # the limit of this minute
    waiting = rows.filter(status=Delivery.Status.PENDING)
    assert waiting.count() == 3
    # Queued for when the minute has passed, not dropped and no attempt used.
    assert {(row.attempts, row.next_attempt_at > NOON) for row in waiting} == {(0, True)}

    time_machine.move_to(NOON + datetime.timedelta(seconds=30), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        outbox.requeue_due()
    assert len(phones(fake)) == 2  # still the same minute

    moment = NOON
    for sent in (4, 5):  # a minute (and a second) after each round of claims, the next round
        moment += datetime.timedelta(seconds=61)
        time_machine.move_to(moment, tick=False)
        with django_capture_on_commit_callbacks(execute=True):
            outbox.requeue_due()
        assert len(phones(fake)) == sent

    assert sorted(phones(fake)) == sorted(s.phone for s in students)  # each once
    assert set(rows.values_list("status", flat=True)) == {Delivery.Status.SENT}
    claims = sorted(rows.values_list("claimed_at", flat=True))
    assert all(later - first >= datetime.timedelta(minutes=1) for first, later in zip(claims, claims[2:], strict=False))


@pytest.mark.django_db
def test_the_setting_limits_sms_when_the_provider_settings_give_none(
    fake, settings, time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(NOON, tick=False)
    settings.SMS_PER_MINUTE = 3
    configure("sms", fake, provider="aliyun")
    campaign, students = campaign_of(4)

    with django_capture_on_commit_callbacks(execute=True):
        reminders.remind_now(
            campaign=campaign, student_ids=[s.pk for s in students], by=None, request_key=uuid.uuid4().hex
        )

    assert len(phones(fake)) == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_sending_at_once_share_one_minute_budget(fake, settings):
    """Four threads (four database connections) send disjoint batches at once: 3 SMS go, the rest wait."""
    settings.SMS_QUIET_HOURS = ""
    configure("sms", fake, provider="aliyun", options_per_minute=3)
    campaign, students = campaign_of(12)
    stage = reminders.remind_now(campaign=campaign, student_ids=[], by=None, request_key=uuid.uuid4().hex)
    ids = [
        Delivery.objects.create(campaign=campaign, stage=stage, student=student, channel="sms").pk
        for student in students
    ]
    barrier = threading.Barrier(4)
    results = []

    def worker(batch):
        try:
            barrier.wait()
            results.append(outbox.send("reminder", batch))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(ids[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(phones(fake)) == 3
    assert sum(r["sent"] for r in results) == 3 and sum(r["deferred"] for r in results) == 9
    assert Delivery.objects.filter(pk__in=ids, status=Delivery.Status.PENDING, attempts=0).count() == 9
