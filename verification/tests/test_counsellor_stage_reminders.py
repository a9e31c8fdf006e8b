"""At the departments' stage each counsellor hears once who in their own classes has not finished."""

import datetime

import pytest
import time_machine

from notices import tasks
from notices.models import Message, StaffReminder
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
