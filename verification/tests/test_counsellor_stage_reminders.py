"""At the departments' stage each counsellor hears once who in their own classes has not finished."""

import copy
import datetime

import pytest
import time_machine
from django.conf import settings
from django.utils import translation

from notices import tasks
from notices.models import ChannelConfig, Message, StaffReminder
from students.models import User
from students.tests.factories import ClassGroupFactory, CohortFactory, DepartmentFactory, UserFactory
from verification import services

from .factories import CampaignFactory, student_with_account
from .shared_cast import fixtures_of

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def shared_cast(module_rows):
    """The cast of the fixtures ``classes``, ``counsellor`` and ``students`` (test_people.py) with the ``me``,
    ``campaign`` and departments they build on (conftest.py), the same rows made in the same order, built
    once for the module: building them for each test was most of its setup time.  Each test gets a copy, and its
    own changes are rolled back."""
    with module_rows(), translation.override(settings.LANGUAGE_CODE):
        department = DepartmentFactory(name="计算机学院")
        other_department = DepartmentFactory(name="外国语学院")
        classes = {
            "mine": ClassGroupFactory(department=department, name="计算机2501"),
            "next door": ClassGroupFactory(department=department, name="计算机2502"),
            "abroad": ClassGroupFactory(department=other_department, name="英语2501"),
        }
        counsellor = UserFactory(role=User.Role.COUNSELLOR, username="counsellor1", first_name="陈辅导员")
        counsellor.classes.set([classes["mine"], classes["abroad"]])
        cohort = CohortFactory(admission_year=2025, level="本科")
        me = student_with_account(
            department=department,
            cohort=cohort,
            name="王小明",
            political_status="中共预备党员",
            exam_number="25110105150123",
        )
        me.class_group = classes["mine"]
        me.class_name = classes["mine"].name
        me.save()
        students = {
            "me": me,
            "classmate": student_with_account(
                department=classes["mine"].department, class_group=classes["mine"], cohort=cohort, name="赵同学"
            ),
            "next door": student_with_account(
                department=classes["next door"].department,
                class_group=classes["next door"],
                cohort=cohort,
                name="钱邻班",
            ),
            "abroad": student_with_account(
                department=classes["abroad"].department, class_group=classes["abroad"], cohort=cohort, name="孙外语"
            ),
        }
        registrar = UserFactory(role="registrar", username="registrar1")
        campaign = CampaignFactory(name="2025级新生学籍核对", cohorts=[me.cohort], by=registrar)
        return {
            "department": department,
            "other_department": other_department,
            "cohort": cohort,
            "classes": classes,
            "counsellor": counsellor,
            "students": students,
            "registrar": registrar,
            "campaign": campaign,
        }


@pytest.fixture
def cast(db, shared_cast):
    return copy.deepcopy(shared_cast)


globals().update(
    fixtures_of(
        "department", "other_department", "cohort", "classes", "counsellor", "students", "registrar", "campaign"
    )
)


@pytest.fixture
def me(students):
    return students["me"]


def to_counsellor(mailoutbox):
    return [mail for mail in mailoutbox if mail.to == ["chen@example.edu.cn"]]


def test_a_counsellor_is_reminded_once_of_the_unfinished_students_of_their_classes_only(
    counsellor,
    students,
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
    counsellor,
    students,
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
    counsellor,
    students,
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
    counsellor,
    students,
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
    counsellor,
    students,
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
