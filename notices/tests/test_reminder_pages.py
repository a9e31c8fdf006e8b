"""The reminder plan, the delivery log and "remind these now" on the class page."""

import datetime
import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from notices import outbox
from notices.models import Delivery, ReminderStage
from students import fields as roll_fields
from students.tests.factories import ClassGroupFactory, CohortFactory
from verification import services
from verification.models import Campaign
from verification.tests.factories import CampaignFactory, student_with_account

from .cast import html, table, text

pytestmark = pytest.mark.django_db
K = ReminderStage.Kind


@pytest.fixture
def cohort(db):
    return CohortFactory(admission_year=2025, level="本科")


def local(days: int, hour: int) -> datetime.datetime:
    moment = timezone.localtime() + datetime.timedelta(days=days)
    return moment.replace(hour=hour, minute=0, second=0, microsecond=0)


def campaign_form(cohort, *, opens, closes) -> dict:
    return {
        "name": "2025级新生学籍核对",
        "kind": Campaign.Kind.NEW_STUDENTS,
        "cohorts": [cohort.pk],
        "opens_at": opens.strftime("%Y-%m-%dT%H:%M"),
        "closes_at": closes.strftime("%Y-%m-%dT%H:%M"),
        "instructions": "",
        "field_codes": [f.code for f in roll_fields.ROLL_FIELDS if f.student_check != roll_fields.StudentCheck.HIDDEN],
    }


def plan(campaign) -> list[tuple[str, int, datetime.datetime]]:
    return [
        (stage.kind, stage.days_before, timezone.localtime(stage.send_at))
        for stage in ReminderStage.objects.filter(campaign=campaign).order_by("send_at")
    ]


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------


def test_a_new_campaign_gets_the_default_plan(client, registrar, cohort):
    opens, closes = local(2, 8), local(30, 18)
    client.force_login(registrar)
    client.post(reverse("verification:campaign_create"), campaign_form(cohort, opens=opens, closes=closes))
    campaign = Campaign.objects.get()

    assert plan(campaign) == [
        (K.OPENS, 0, opens),
        (K.BEFORE_CLOSE, 7, closes - datetime.timedelta(days=7)),
        (K.BEFORE_CLOSE, 3, closes - datetime.timedelta(days=3)),
        (K.BEFORE_CLOSE, 1, closes - datetime.timedelta(days=1)),
        (K.LAST_DAY, 0, closes.replace(hour=9)),
    ]
    rows = table(html(client.get(reverse("notices:reminder_plan", args=[campaign.pk]))), "plan")
    assert [row[0] for row in rows] == ["活动开始时", "截止前 7 天", "截止前 3 天", "截止前 1 天", "截止当天"]
    assert all(row[2] == "待发送" for row in rows)
    assert rows[4][1] == f"{closes:%Y-%m-%d} 09:00"


def test_moving_the_campaign_dates_moves_the_stages_not_yet_sent(client, registrar, cohort):
    opens, closes = local(2, 8), local(30, 18)
    client.force_login(registrar)
    client.post(reverse("verification:campaign_create"), campaign_form(cohort, opens=opens, closes=closes))
    campaign = Campaign.objects.get()
    sent = ReminderStage.objects.get(campaign=campaign, kind=K.BEFORE_CLOSE, days_before=7)
    sent.dispatched_at = timezone.now()
    sent.save()

    later = local(40, 18)
    response = client.post(
        reverse("verification:campaign_update", args=[campaign.pk]), campaign_form(cohort, opens=opens, closes=later)
    )

    assert response.status_code == 302
    assert plan(campaign) == [
        (K.OPENS, 0, opens),
        (K.BEFORE_CLOSE, 7, closes - datetime.timedelta(days=7)),  # already sent: stays where it was
        (K.BEFORE_CLOSE, 3, later - datetime.timedelta(days=3)),
        (K.BEFORE_CLOSE, 1, later - datetime.timedelta(days=1)),
        (K.LAST_DAY, 0, later.replace(hour=9)),
    ]


def test_registrar_adds_and_removes_stages_but_not_one_already_sent(client, registrar, cohort):
    campaign = CampaignFactory(cohorts=[cohort])  # opened yesterday, closes in 14 days
    opened = ReminderStage.objects.get(campaign=campaign, kind=K.OPENS)
    opened.dispatched_at = timezone.now()
    opened.save()
    client.force_login(registrar)
    url = reverse("notices:reminder_plan", args=[campaign.pk])

    client.post(url, {"days_before": 5})
    three = ReminderStage.objects.get(campaign=campaign, days_before=3)
    client.post(reverse("notices:reminder_stage_remove", args=[three.pk]))
    response = client.post(reverse("notices:reminder_stage_remove", args=[opened.pk]), follow=True)

    assert "这一轮提醒已发送，不能删除。" in html(response)
    rows = table(html(client.get(url)), "plan")
    assert [row[0] for row in rows] == ["活动开始时", "截止前 7 天", "截止前 5 天", "截止前 1 天", "截止当天"]
    assert rows[0][2].startswith("已发送")
    assert "删除" not in rows[0][3] and "删除" in rows[2][3]


def test_a_stage_whose_moment_has_passed_is_refused(client, registrar, cohort):
    campaign = CampaignFactory(cohorts=[cohort])  # closes in 14 days
    client.force_login(registrar)
    page = html(client.post(reverse("notices:reminder_plan", args=[campaign.pk]), {"days_before": 20}))
    assert "截止前 20 天已经过去" in page
    assert not ReminderStage.objects.filter(campaign=campaign, days_before=20).exists()


@pytest.mark.parametrize("who", ["secretary", "student"])
def test_only_registrar_staff_see_the_plan_and_the_log(client, cohort, department, secretary, who):
    campaign = CampaignFactory(cohorts=[cohort])
    user = secretary if who == "secretary" else student_with_account(department=department, cohort=cohort).user
    client.force_login(user)
    for url in (
        reverse("notices:reminder_plan", args=[campaign.pk]),
        reverse("notices:delivery_log", args=[campaign.pk]),
    ):
        assert client.get(url).status_code == 404
    assert client.post(reverse("notices:reminder_plan", args=[campaign.pk]), {"days_before": 5}).status_code == 404
    assert not ReminderStage.objects.filter(days_before=5).exists()


# ---------------------------------------------------------------------------
# "Remind these now"
# ---------------------------------------------------------------------------


@pytest.fixture
def klass(department):
    return ClassGroupFactory(department=department, name="计算机2501")


@pytest.fixture
def classmates(klass, department, cohort):
    """Three students of one class: two not done (with e-mail), one who has confirmed everything."""
    people = [
        student_with_account(
            department=department, class_group=klass, cohort=cohort, name=name, email=f"{key}@stu.example.edu"
        )
        for key, name in (("a", "张三"), ("b", "李四"), ("c", "王五"))
    ]
    return people


@pytest.fixture
def open_campaign(classmates, cohort):
    campaign = CampaignFactory(cohorts=[cohort])
    done = campaign.checklists.get(student=classmates[2])
    services.checklist_confirm_all(checklist_id=done.pk, record_version=classmates[2].version, by=classmates[2].user)
    return campaign


def class_page(client, klass, campaign) -> str:
    response = client.get(reverse("workspace:class_detail", args=[klass.pk]), {"campaign": campaign.pk})
    assert response.status_code == 200
    return html(response)


def remind_form_key(page: str) -> str:
    match = re.search(r'<form[^>]*id="remind-form".*?name="request_key" value="([^"]+)"', page, re.S)
    assert match, "no remind form"
    return match.group(1)


def remind(client, klass, campaign, key, *, students=(), scope="chosen", capture):
    with capture(execute=True):
        return client.post(
            reverse("notices:remind_now", args=[klass.pk]),
            {"campaign": campaign.pk, "request_key": key, "scope": scope, "students": [s.pk for s in students]},
            follow=True,
        )


def test_remind_now_offers_only_the_students_not_done(client, secretary, klass, classmates, open_campaign):
    client.force_login(secretary)
    page = class_page(client, klass, open_campaign)
    boxes = re.findall(r'name="students" value="(\d+)" form="remind-form"', page)
    assert sorted(int(pk) for pk in boxes) == sorted([classmates[0].pk, classmates[1].pk])


def test_a_double_submit_of_remind_now_sends_once(
    client, secretary, klass, classmates, open_campaign, django_capture_on_commit_callbacks
):
    client.force_login(secretary)
    key = remind_form_key(class_page(client, klass, open_campaign))
    chosen = classmates[:2]

    first = remind(client, klass, open_campaign, key, students=chosen, capture=django_capture_on_commit_callbacks)
    second = remind(client, klass, open_campaign, key, students=chosen, capture=django_capture_on_commit_callbacks)

    assert "将通过 电子邮件 提醒 2 名学生（电子邮件 2 人）。" in html(first)
    assert "这次提醒已经发送过，没有重复发送。" in html(second)
    stage = ReminderStage.objects.get(kind=K.MANUAL)
    assert stage.created_by == secretary
    assert Delivery.objects.filter(stage=stage).count() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["a@stu.example.edu", "b@stu.example.edu"]
    assert "张三同学" in next(m.body for m in mail.outbox if m.to == ["a@stu.example.edu"])
    # A new visit to the page gives a new key: reminding again is a new, deliberate act.
    assert remind_form_key(class_page(client, klass, open_campaign)) != key


def test_remind_the_whole_class_reaches_only_those_not_done(
    client, registrar, klass, classmates, open_campaign, django_capture_on_commit_callbacks
):
    client.force_login(registrar)
    key = remind_form_key(class_page(client, klass, open_campaign))
    remind(client, klass, open_campaign, key, scope="class", capture=django_capture_on_commit_callbacks)
    assert sorted(m.to[0] for m in mail.outbox) == ["a@stu.example.edu", "b@stu.example.edu"]


def test_remind_now_with_the_broker_down_succeeds_and_sends_once_the_broker_is_back(
    client, secretary, klass, classmates, open_campaign, django_capture_on_commit_callbacks, broker_down, caplog
):
    """Redis down: the rows are committed and the page says so; the beat's requeue sends them later, once."""
    client.force_login(secretary)
    key = remind_form_key(class_page(client, klass, open_campaign))

    response = remind(
        client, klass, open_campaign, key, students=classmates[:2], capture=django_capture_on_commit_callbacks
    )

    assert response.status_code == 200
    assert "将通过 电子邮件 提醒 2 名学生（电子邮件 2 人）。" in html(response)
    assert "could not queue notices.tasks.deliveries_send" in caplog.text
    assert mail.outbox == []
    rows = Delivery.objects.filter(stage__kind=K.MANUAL)
    assert [row.status for row in rows] == [Delivery.Status.PENDING] * 2
    assert all(row.next_attempt_at <= timezone.now() for row in rows)  # due at the next requeue, not in 10 min

    broker_down.back()
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.requeue_due() == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.requeue_due() == 0
    assert sorted(m.to[0] for m in mail.outbox) == ["a@stu.example.edu", "b@stu.example.edu"]
    assert set(rows.values_list("status", flat=True)) == {Delivery.Status.SENT}


def test_another_departments_secretary_gets_404_for_remind_now(
    client, other_secretary, klass, classmates, open_campaign, django_capture_on_commit_callbacks
):
    client.force_login(other_secretary)
    assert client.get(reverse("workspace:class_detail", args=[klass.pk])).status_code == 404
    response = remind(
        client,
        klass,
        open_campaign,
        "k" * 32,
        students=classmates[:1],
        capture=django_capture_on_commit_callbacks,
    )
    assert response.status_code == 404
    assert not ReminderStage.objects.filter(kind=K.MANUAL).exists()
    assert mail.outbox == []


def test_a_secretary_cannot_slip_in_a_student_of_another_department(
    client, secretary, klass, classmates, open_campaign, other_department, cohort, django_capture_on_commit_callbacks
):
    outsider = student_with_account(department=other_department, cohort=cohort, email="x@stu.example.edu")
    open_campaign.checklists.get_or_create(student=outsider)
    client.force_login(secretary)
    key = remind_form_key(class_page(client, klass, open_campaign))

    response = remind(
        client,
        klass,
        open_campaign,
        key,
        students=[classmates[0], outsider],
        capture=django_capture_on_commit_callbacks,
    )

    assert response.status_code == 404
    assert not ReminderStage.objects.filter(kind=K.MANUAL).exists()
    assert mail.outbox == []


def test_remind_now_is_refused_once_the_campaign_has_closed(
    client, secretary, klass, classmates, cohort, django_capture_on_commit_callbacks
):
    closed = CampaignFactory(
        cohorts=[cohort],
        opens_at=timezone.now() - datetime.timedelta(days=20),
        closes_at=timezone.now() - datetime.timedelta(days=1),
    )
    client.force_login(secretary)
    response = remind(
        client, klass, closed, "k" * 32, students=classmates[:1], capture=django_capture_on_commit_callbacks
    )
    assert "核对活动未在进行中，不能发送提醒。" in html(response)
    assert mail.outbox == []


# ---------------------------------------------------------------------------
# The delivery log
# ---------------------------------------------------------------------------


def test_the_delivery_log_counts_and_lists_each_recipient_without_id_numbers(
    client, registrar, secretary, klass, classmates, open_campaign, django_capture_on_commit_callbacks
):
    client.force_login(secretary)
    key = remind_form_key(class_page(client, klass, open_campaign))
    remind(client, klass, open_campaign, key, students=classmates[:2], capture=django_capture_on_commit_callbacks)
    stage = ReminderStage.objects.get(kind=K.MANUAL)
    Delivery.objects.filter(student=classmates[1]).update(
        status=Delivery.Status.FAILED, last_error="SMTPRecipientsRefused: 550 mailbox unavailable"
    )
    Delivery.objects.create(campaign=open_campaign, stage=stage, student=classmates[2], status=Delivery.Status.SKIPPED)

    client.force_login(registrar)
    url = reverse("notices:delivery_log", args=[open_campaign.pk])
    page = html(client.get(url))

    assert text(re.search(r'<dl class="counts".*?</dl>', page, re.S).group()) == "已发送 1 发送失败 1 待发送 0 未发送 1"
    rows = table(page, "deliveries")
    assert {(row[1], row[5]) for row in rows} == {
        (classmates[0].student_number, "已发送"),
        (classmates[1].student_number, "发送失败"),
        (classmates[2].student_number, "未发送"),
    }
    for student in classmates:
        assert student.id_number not in page and student.masked_id_number not in page

    failed = table(html(client.get(url, {"status": "failed"})), "deliveries")
    assert len(failed) == 1
    assert failed[0][2] == "李四" and failed[0][7] == "SMTPRecipientsRefused: 550 mailbox unavailable"
    assert [row[2] for row in table(html(client.get(url, {"q": "张"})), "deliveries")] == ["张三"]


def test_the_delivery_log_filter_names_each_round_in_the_schools_time(client, registrar, open_campaign):
    # 16:30 UTC is half past midnight the next day in Beijing (settings.TIME_ZONE).
    sent = datetime.datetime(2026, 9, 20, 16, 30, tzinfo=datetime.UTC)
    ReminderStage.objects.filter(campaign=open_campaign).update(send_at=sent, dispatched_at=sent)
    client.force_login(registrar)

    page = html(client.get(reverse("notices:delivery_log", args=[open_campaign.pk])))

    select = re.search(r'<select name="stage".*?</select>', page, re.S).group()
    assert "2026-09-21 00:30" in select and "16:30" not in select
    assert "截止前 3 天 2026-09-21 00:30" in text(select)


def test_remind_now_warns_about_students_no_channel_reaches(
    client, secretary, klass, classmates, open_campaign, department, cohort, django_capture_on_commit_callbacks
):
    no_email = student_with_account(department=department, class_group=klass, cohort=cohort, name="赵六", email="")
    open_campaign.checklists.get_or_create(student=no_email)
    client.force_login(secretary)
    key = remind_form_key(class_page(client, klass, open_campaign))

    page = html(
        remind(
            client,
            klass,
            open_campaign,
            key,
            students=[classmates[0], no_email],
            capture=django_capture_on_commit_callbacks,
        )
    )

    assert "将通过 电子邮件 提醒 1 名学生（电子邮件 1 人）。" in page
    assert "其中 1 人没有可用的联系方式（手机号码、企业微信或钉钉账号、电子邮箱），收不到提醒，请另行通知。" in page
    assert [m.to for m in mail.outbox] == [["a@stu.example.edu"]]


def test_a_removed_default_stage_stays_removed_when_the_campaign_is_edited():
    from notices.models import ReminderStage
    from notices.reminders import reminder_plan_ensure, stage_remove
    from verification.tests.factories import CampaignFactory

    campaign = CampaignFactory()
    three_days = ReminderStage.objects.get(campaign=campaign, kind="before_close", days_before=3)
    assert stage_remove(stage=three_days)
    reminder_plan_ensure(campaign=campaign)
    assert not ReminderStage.objects.filter(campaign=campaign, kind="before_close", days_before=3).exists()
    assert ReminderStage.objects.filter(campaign=campaign).exclude(kind="manual").count() == 4


# ---------------------------------------------------------------------------
# What a send would cost, before it is sent
# ---------------------------------------------------------------------------


def sms_first(template_text: str):
    """SMS (Alibaba, configured on the 提醒渠道 page) first, then e-mail."""
    from notices.models import ChannelConfig

    options = {
        "access_key_id": "LTAI5tKey",
        "sign_name": "示范大学",
        "template_id": "SMS_1",
        "template_text": template_text,
    }
    ChannelConfig.objects.create(name="sms", enabled=True, position=1, provider="aliyun", options=options, secret="s")
    ChannelConfig.objects.create(name="email", enabled=True, position=2)


def test_the_class_page_estimates_the_channels_and_the_sms_billed_before_reminding(
    client, secretary, klass, classmates, open_campaign, department, cohort
):
    # 【示范大学】(6) + name (2) + 同学，请于 (5) + the deadline "MM月DD日 HH:MM" (12) + 前核对学籍。(6) = 31: one SMS.
    sms_first("${name}同学，请于${deadline}前核对学籍。")
    type(classmates[0]).objects.filter(pk__in=[s.pk for s in classmates]).update(phone="")  # e-mail only
    for name in ("赵六", "钱七"):
        only_phone = student_with_account(
            department=department, class_group=klass, cohort=cohort, name=name, email="", phone="13912345678"
        )
        open_campaign.checklists.get_or_create(student=only_phone)
    student_with_account(department=department, class_group=klass, cohort=cohort, name="孙八", email="", phone="")
    open_campaign.checklists.get_or_create(student=klass.students.get(name="孙八"))
    client.force_login(secretary)

    estimate = text(re.search(r'<p class="estimate".*?</p>', class_page(client, klass, open_campaign), re.S)[0])

    # SMS takes those with a mobile number (the two without e-mail), e-mail the two others.
    assert "将通过 短信/电子邮件 提醒 4 名学生（短信 2 人、电子邮件 2 人）。" in estimate
    assert "短信 2 条，计费 2 条（70 字以内算一条，更长的按 67 字一条）。" in estimate
    assert "1 名学生没有可用的联系方式，收不到提醒，请另行通知。" in estimate


def test_a_long_sms_is_billed_in_parts_of_67_characters(registrar, client, classmates, open_campaign):
    from notices.channels import sms_parts

    assert [sms_parts("字" * n) for n in (1, 70, 71, 134, 135)] == [1, 1, 2, 2, 3]
    sms_first("${name}同学：" + "请尽快登录学籍核对系统核对学籍信息" * 4 + "${link}")
    Student = type(classmates[0])
    Student.objects.filter(pk__in=[s.pk for s in classmates]).update(email="", phone="13912345678")
    client.force_login(registrar)

    page = html(client.get(reverse("notices:reminder_plan", args=[open_campaign.pk])))

    # Two unfinished students, each message over 70 characters but under 134: two parts each.
    assert "短信 2 条，计费 4 条（70 字以内算一条，更长的按 67 字一条）。" in text(
        re.search(r'<p class="estimate".*?</p>', page, re.S)[0]
    )
