"""The student channels (notices/channels.py) through the outbox, against the platforms' local fake servers.

Nothing is patched: each channel is configured as a school would (ChannelConfig)
with the fake's address as its endpoint, a reminder is dispatched through the
reminder services, and the fake (notices/tests/fake_providers.py) checks the
signature, the token and the template variables as the platform would.
"""

import datetime
import uuid
import zoneinfo

import pytest
from django.core.cache import cache
from django.db import connection

from notices import channels, outbox, reminders
from notices.models import ChannelConfig, Delivery, ReminderStage
from students.tests.factories import CohortFactory, StudentFactory
from verification.tests.factories import CampaignFactory

from .fake_providers import ALIYUN, DINGTALK, TENCENT, WECOM, Fake

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture
def fake():
    cache.clear()  # access tokens are cached per corp: each test starts without one
    with Fake() as server:
        yield server
    cache.clear()


def configure(
    name: str, fake, *, provider: str = "", position: int = 1, options_per_minute: int | None = None, **changes
) -> ChannelConfig:
    """A channel set up as on the registrar's page, pointing at the fake server (SMS: with its minute limit)."""
    if name == "sms" and provider == "aliyun":
        options = {"access_key_id": ALIYUN["id"], "sign_name": ALIYUN["sign"], "template_id": ALIYUN["template"],
                   "endpoint": fake.url + "/"}  # fmt: skip
        secret = ALIYUN["secret"]
    elif name == "sms":
        options = {"secret_id": TENCENT["id"], "sdk_app_id": TENCENT["app"], "sign_name": TENCENT["sign"],
                   "template_id": TENCENT["template"], "endpoint": fake.url + "/"}  # fmt: skip
        secret = TENCENT["key"]
    elif name == "wecom":
        options, secret = {"corp_id": WECOM["corp"], "agent_id": WECOM["agent"], "api": fake.url}, WECOM["secret"]
    else:
        options, secret = (
            {"app_key": DINGTALK["key"], "agent_id": DINGTALK["agent"], "api": fake.url},
            DINGTALK["secret"],
        )
    if options_per_minute:
        options["per_minute"] = options_per_minute
    values = {"enabled": True, "position": position, "provider": provider, "options": options, "secret": secret}
    return ChannelConfig.objects.create(name=name, **(values | changes))


# (channel, provider, the student attribute that addresses them, good / refused / rate-limited values)
PLATFORMS = [
    ("sms", "aliyun", "phone", "13912345678", "13800000001", "13800000002"),
    ("sms", "tencent", "phone", "13912345678", "13800000001", "13800000002"),
    ("wecom", "", "student_number", "2025990001", "ghost", "busy"),
    ("dingtalk", "", "student_number", "2025990001", "ghost", "busy"),
]
IDS = ["aliyun", "tencent", "wecom", "dingtalk"]


def sends_of(fake, channel: str, provider: str) -> list[dict]:
    """The message requests the platform accepted as well-formed (signature, token and template right)."""
    platform = provider or channel
    return [r for r in fake.of(platform) if r.get("ok")]


def remind(student, *, capture, campaign=None):
    """Remind-now for one student, through the reminder services; the rows it wrote."""
    campaign = campaign or CampaignFactory(cohorts=[student.cohort])
    with capture(execute=True):
        stage = reminders.remind_now(campaign=campaign, student_ids=[student.pk], by=None, request_key=uuid.uuid4().hex)
    return stage, Delivery.objects.filter(stage=stage).order_by("id")


@pytest.fixture
def daytime(settings):
    settings.SMS_QUIET_HOURS = ""  # these tests are about the platforms, whatever the hour they run at


@pytest.mark.parametrize(("channel", "provider", "attribute", "good", "_refused", "_limited"), PLATFORMS, ids=IDS)
def test_a_reminder_goes_out_on_the_schools_first_channel_with_its_template_and_link(
    channel, provider, attribute, good, _refused, _limited, fake, daytime, settings, django_capture_on_commit_callbacks
):
    configure(channel, fake, provider=provider)
    student = StudentFactory(name="王小明", email="", cohort=CohortFactory(), **{attribute: good})

    stage, rows = remind(student, capture=django_capture_on_commit_callbacks)

    assert [(r.channel, r.status) for r in rows] == [(channel, Delivery.Status.SENT)]
    (request,) = sends_of(fake, channel, provider)
    link = f"{settings.PORTAL_URL}/check/{stage.campaign_id}/"
    if provider == "aliyun":
        assert request["params"]["PhoneNumbers"] == good
        variables = request["params"]["TemplateParam"]
        assert '"name":"王小明"' in variables and link in variables
    elif provider == "tencent":
        assert request["body"]["PhoneNumberSet"] == [f"+86{good}"]
        name, deadline, sent_link = request["body"]["TemplateParamSet"]
        assert (name, sent_link) == ("王小明", link) and "月" in deadline
    elif channel == "wecom":
        assert request["body"]["touser"] == good  # the 学号 is the WeCom userid by default
        assert request["body"]["textcard"]["url"] == link
        assert "王小明" in request["body"]["textcard"]["description"]
    else:
        assert request["body"]["userid_list"] == good
        assert request["body"]["msg"]["action_card"]["single_url"] == link


@pytest.mark.parametrize(("channel", "provider", "attribute", "_good", "_refused", "limited"), PLATFORMS, ids=IDS)
def test_a_rate_limit_answer_is_retried_later_on_the_same_channel(
    channel, provider, attribute, _good, _refused, limited, fake, daytime, settings, django_capture_on_commit_callbacks
):
    settings.REMINDER_CHANNELS = [channel, "console"]
    configure(channel, fake, provider=provider)
    student = StudentFactory(email="", cohort=CohortFactory(), **{attribute: limited})

    _stage, rows = remind(student, capture=django_capture_on_commit_callbacks)

    (row,) = rows  # no fallback: it is tried again, not given up
    assert (row.channel, row.status, row.attempts) == (channel, Delivery.Status.PENDING, 1)
    assert row.next_attempt_at > row.claimed_at
    assert row.last_error


@pytest.mark.parametrize(("channel", "provider", "attribute", "_good", "refused", "_limited"), PLATFORMS, ids=IDS)
def test_a_permanent_error_fails_and_falls_back_to_the_next_channel(
    channel, provider, attribute, _good, refused, _limited, fake, daytime, django_capture_on_commit_callbacks
):
    configure(channel, fake, provider=provider, position=1)
    ChannelConfig.objects.create(name="console", enabled=True, position=2)
    student = StudentFactory(email="", cohort=CohortFactory(), **{attribute: refused})

    _stage, rows = remind(student, capture=django_capture_on_commit_callbacks)

    log = [(r.channel, r.status) for r in rows]
    assert log == [(channel, Delivery.Status.FAILED), ("console", Delivery.Status.SENT)]
    assert rows[0].attempts == 1  # given up at once, not retried


@pytest.mark.parametrize(("channel", "provider", "attribute", "good", "_refused", "_limited"), PLATFORMS, ids=IDS)
def test_a_double_dispatch_sends_each_student_once(
    channel, provider, attribute, good, _refused, _limited, fake, daytime, django_capture_on_commit_callbacks
):
    configure(channel, fake, provider=provider)
    student = StudentFactory(email="", cohort=CohortFactory(), **{attribute: good})
    campaign = CampaignFactory(cohorts=[student.cohort])
    stage = ReminderStage.objects.create(
        campaign=campaign, kind=ReminderStage.Kind.MANUAL, send_at=campaign.opens_at, student_ids=[student.pk]
    )

    with django_capture_on_commit_callbacks(execute=True):
        reminders.stage_dispatch(stage_id=stage.pk)
        reminders.stage_dispatch(stage_id=stage.pk)
    ids = list(Delivery.objects.values_list("pk", flat=True))
    outbox.send("reminder", ids)  # the same task delivered again
    outbox.requeue_due(now=campaign.opens_at + datetime.timedelta(days=1))

    assert len(sends_of(fake, channel, provider)) == 1
    assert list(Delivery.objects.values_list("channel", "status")) == [(channel, Delivery.Status.SENT)]


def test_a_channel_that_is_not_configured_reaches_nobody_and_the_next_one_is_used(
    fake, settings, django_capture_on_commit_callbacks
):
    settings.REMINDER_CHANNELS = ["sms", "wecom", "console"]
    student = StudentFactory(email="", cohort=CohortFactory(), phone="13912345678")

    _stage, rows = remind(student, capture=django_capture_on_commit_callbacks)

    assert [(r.channel, r.status) for r in rows] == [
        ("sms", Delivery.Status.SKIPPED),
        ("wecom", Delivery.Status.SKIPPED),
        ("console", Delivery.Status.SENT),
    ]
    assert fake.requests == []


# --- Quiet hours -------------------------------------------------------------------------------------


def test_sms_in_quiet_hours_waits_until_eight_and_is_then_sent(fake, time_machine, django_capture_on_commit_callbacks):
    night = datetime.datetime(2026, 9, 10, 23, 30, tzinfo=SHANGHAI)
    time_machine.move_to(night, tick=False)
    configure("sms", fake, provider="aliyun")
    student = StudentFactory(email="", cohort=CohortFactory(), phone="13912345678")
    campaign = CampaignFactory(
        cohorts=[student.cohort],
        opens_at=night - datetime.timedelta(days=3),
        closes_at=night + datetime.timedelta(days=9),
    )

    _stage, rows = remind(student, capture=django_capture_on_commit_callbacks, campaign=campaign)

    (row,) = rows
    eight = datetime.datetime(2026, 9, 11, 8, 0, tzinfo=SHANGHAI)
    assert (row.status, row.attempts, row.next_attempt_at) == (Delivery.Status.PENDING, 0, eight)
    assert "夜间" in row.last_error
    assert fake.requests == []  # not a message at night

    time_machine.move_to(eight - datetime.timedelta(minutes=1), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        outbox.requeue_due()
    assert fake.requests == []  # still night

    time_machine.move_to(eight + datetime.timedelta(minutes=1), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        outbox.requeue_due()
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Delivery.Status.SENT, 1)
    assert len(sends_of(fake, "sms", "aliyun")) == 1


def test_the_registrar_may_allow_sms_at_night(fake, time_machine, django_capture_on_commit_callbacks):
    night = datetime.datetime(2026, 9, 10, 23, 30, tzinfo=SHANGHAI)
    time_machine.move_to(night, tick=False)
    configure("sms", fake, provider="aliyun", night_sms_allowed=True)
    student = StudentFactory(email="", cohort=CohortFactory(), phone="13912345678")
    campaign = CampaignFactory(
        cohorts=[student.cohort],
        opens_at=night - datetime.timedelta(days=3),
        closes_at=night + datetime.timedelta(hours=3),
    )

    _stage, rows = remind(student, capture=django_capture_on_commit_callbacks, campaign=campaign)

    assert [r.status for r in rows] == [Delivery.Status.SENT]


def test_wecom_is_not_held_by_the_sms_quiet_hours(fake, time_machine, django_capture_on_commit_callbacks):
    night = datetime.datetime(2026, 9, 10, 23, 30, tzinfo=SHANGHAI)
    time_machine.move_to(night, tick=False)
    configure("wecom", fake)
    student = StudentFactory(email="", cohort=CohortFactory(), student_number="2025990002")
    campaign = CampaignFactory(
        cohorts=[student.cohort],
        opens_at=night - datetime.timedelta(days=3),
        closes_at=night + datetime.timedelta(days=9),
    )

    _stage, rows = remind(student, capture=django_capture_on_commit_callbacks, campaign=campaign)

    assert [r.status for r in rows] == [Delivery.Status.SENT]


# --- Secrets and estimates ---------------------------------------------------------------------------


def test_a_channels_secret_is_stored_encrypted(fake):
    configure("sms", fake, provider="aliyun")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret, options FROM {ChannelConfig._meta.db_table}")
        ((stored, options),) = cursor.fetchall()
    assert ALIYUN["secret"] not in stored and ALIYUN["secret"] not in str(options)
    assert ChannelConfig.objects.get().secret == ALIYUN["secret"]


def test_the_estimate_counts_each_student_on_the_first_channel_that_reaches_them(fake):
    configure("sms", fake, provider="aliyun", position=1)
    ChannelConfig.objects.create(name="email", enabled=True, position=2)
    ChannelConfig.objects.create(name="console", enabled=True, position=3)
    cohort = CohortFactory()
    StudentFactory(cohort=cohort, phone="13912345678", email="a@stu.edu")  # sms first
    StudentFactory(cohort=cohort, phone="", email="b@stu.edu")  # no phone: e-mail
    StudentFactory(cohort=cohort, phone="010-1234", email="")  # a landline: the console
    students = cohort.students.all()

    estimate = channels.reach_estimate(students)

    assert estimate == {
        "by_channel": {"sms": 1, "wecom": 0, "dingtalk": 0, "email": 1, "console": 1},
        "unreachable": 0,
    }
    ChannelConfig.objects.filter(name="console").update(enabled=False)
    assert channels.reach_estimate(students)["unreachable"] == 1
