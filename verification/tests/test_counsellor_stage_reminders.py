"""At the departments' stage each counsellor hears once who in their own classes has not finished."""

import datetime

import pytest
import time_machine

from notices import tasks
from notices.models import ChannelConfig, Message, StaffReminder
from verification import services

from .test_people import classes, counsellor, students  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def to_counsellor(mailoutbox):
    return [mail for mail in mailoutbox if mail.to == ["chen@example.edu.cn"]]


def test_a_counsellor_is_reminded_once_of_the_unfinished_students_of_their_classes_only(
    counsellor,  # noqa: F811
    students,  # noqa: F811
    campaign,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    counsellor.email = "chen@example.edu.cn"
    counsellor.save(update_fields=["email"])
    me = students["me"]
    services.checklist_confirm_all(
        checklist_id=campaign.checklists.get(student=me).pk, record_version=me.version, by=me.user
    )

    # While students still check, the counsellor hears nothing from this stage.
    with django_capture_on_commit_callbacks(execute=True):
        tasks.reminders_dispatch_due()
    assert not to_counsellor(mailoutbox)

    with time_machine.travel(campaign.closes_at + datetime.timedelta(minutes=5), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            services.campaigns_close_due()
            assert tasks.reminders_dispatch_due() == 1
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.reminders_dispatch_due() == 0  # the next beat run: nothing again

    (mail,) = to_counsellor(mailoutbox)
    assert "2 名学生未完成" in mail.subject
    assert "赵同学" in mail.body and "孙外语" in mail.body  # both departments' classes
    assert "王小明" not in mail.body  # finished
    assert "钱邻班" not in mail.body  # the class next door is not theirs
    assert StaffReminder.objects.get().status == StaffReminder.Status.SENT
    assert Message.objects.filter(user=counsellor, text__contains="2 名学生未完成核对").count() == 1

    # After the departments' deadline the stage is over: nobody new is reminded.
    StaffReminder.objects.all().delete()
    with time_machine.travel(campaign.departments_deadline + datetime.timedelta(minutes=5), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.reminders_dispatch_due() == 0
    assert len(to_counsellor(mailoutbox)) == 1


def test_a_department_that_signed_off_is_not_chased_again(
    counsellor,  # noqa: F811
    students,  # noqa: F811
    campaign,
    secretary,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    counsellor.email = "chen@example.edu.cn"
    counsellor.save(update_fields=["email"])
    with time_machine.travel(campaign.closes_at + datetime.timedelta(minutes=5), tick=False):
        services.campaigns_close_due()
        services.department_sign_off(
            campaign=campaign, department=students["me"].department, remark="已核对", by=secretary
        )
        with django_capture_on_commit_callbacks(execute=True):
            tasks.reminders_dispatch_due()

    (mail,) = to_counsellor(mailoutbox)
    assert "1 名学生未完成" in mail.subject
    assert "孙外语" in mail.body and "赵同学" not in mail.body and "王小明" not in mail.body


# The school's WeCom / DingTalk app, against the platforms' local fake (notices/tests/fake_providers.py).


@pytest.fixture
def fake():
    from django.core.cache import cache

    from notices.tests.fake_providers import Fake

    cache.clear()  # access tokens are cached per corp
    with Fake() as server:
        yield server
    cache.clear()


def app_channel(name, fake, *, position=1, staff_userid_field="username"):
    from notices.tests.test_channels import configure

    config = configure(name, fake, position=position)
    if staff_userid_field:
        config.options = {**config.options, "staff_userid_field": staff_userid_field}
        config.save(update_fields=["options"])
    return config


def stage_reminders_run(campaign, capture, runs=2):
    with time_machine.travel(campaign.closes_at + datetime.timedelta(minutes=5), tick=False):
        with capture(execute=True):
            services.campaigns_close_due()
        for _run in range(runs):  # beat runs again: nobody is reminded twice
            with capture(execute=True):
                tasks.reminders_dispatch_due()


def app_messages_to(fake, userid):
    return [
        r for r in fake.requests if r.get("ok") and userid in (r["body"].get("touser"), r["body"].get("userid_list"))
    ]


@pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
def test_a_counsellor_is_reminded_in_the_schools_app_when_it_comes_before_email(
    platform,
    counsellor,  # noqa: F811
    students,  # noqa: F811
    campaign,
    mailoutbox,
    fake,
    settings,
    django_capture_on_commit_callbacks,
):
    counsellor.email = "chen@example.edu.cn"
    counsellor.save(update_fields=["email"])
    app_channel(platform, fake, position=1)
    ChannelConfig.objects.create(name="email", enabled=True, position=2)

    stage_reminders_run(campaign, django_capture_on_commit_callbacks)

    (request,) = app_messages_to(fake, "counsellor1")  # the staff username is their userid here
    if platform == "wecom":
        card = request["body"]["textcard"]
        assert "3 名学生未完成" in card["description"] and card["url"] == f"{settings.PORTAL_URL}/workspace/"
    else:
        card = request["body"]["msg"]["action_card"]
        assert "3 名学生未完成" in card["markdown"] and card["single_url"] == f"{settings.PORTAL_URL}/workspace/"
    assert not to_counsellor(mailoutbox)  # e-mail is only the fallback
    assert [(r.channel, r.status) for r in StaffReminder.objects.all()] == [(platform, StaffReminder.Status.SENT)]
    assert Message.objects.filter(user=counsellor).count() == 1


def test_a_counsellor_the_app_does_not_know_is_emailed_instead_once(
    counsellor,  # noqa: F811
    students,  # noqa: F811
    campaign,
    mailoutbox,
    fake,
    django_capture_on_commit_callbacks,
):
    counsellor.username, counsellor.email = "ghost", "chen@example.edu.cn"  # WeCom answers: no such user
    counsellor.save(update_fields=["username", "email"])
    app_channel("wecom", fake)

    stage_reminders_run(campaign, django_capture_on_commit_callbacks)

    assert len(to_counsellor(mailoutbox)) == 1
    assert [(r.channel, r.status) for r in StaffReminder.objects.order_by("id")] == [
        ("wecom", StaffReminder.Status.FAILED),
        ("email", StaffReminder.Status.SENT),
    ]


@pytest.mark.parametrize("case", ["no staff userids", "email first"])
def test_counsellors_are_emailed_when_the_app_is_not_for_staff_or_comes_after_email(
    case,
    counsellor,  # noqa: F811
    students,  # noqa: F811
    campaign,
    mailoutbox,
    fake,
    django_capture_on_commit_callbacks,
):
    counsellor.email = "chen@example.edu.cn"
    counsellor.save(update_fields=["email"])
    if case == "no staff userids":
        app_channel("wecom", fake, staff_userid_field="")
    else:
        ChannelConfig.objects.create(name="email", enabled=True, position=1)
        app_channel("wecom", fake, position=2)

    stage_reminders_run(campaign, django_capture_on_commit_callbacks)

    assert len(to_counsellor(mailoutbox)) == 1
    assert not app_messages_to(fake, "counsellor1")
    assert StaffReminder.objects.filter(status=StaffReminder.Status.SENT).get().channel == "email"
