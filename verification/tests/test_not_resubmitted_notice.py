"""A returned flag closed as 逾期未重新提交 at the departments' deadline: the student hears it once, on their channel."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from notices.models import Message, Notification
from verification import services
from verification.models import Flag

pytestmark = pytest.mark.django_db
S = Flag.Status


def returned_flag(me, checklist, secretary):
    services.checklist_confirm_all(checklist_id=checklist.pk, record_version=me.version, by=me.user)
    flag = services.field_flag(
        checklist_id=checklist.pk,
        field_code="XM",
        claimed_value="王晓明",
        explanation="身份证上是晓",
        record_version=me.version,
        by=me.user,
    )
    services.flag_transition(flag_id=flag.pk, to=S.RETURNED, by=secretary, note="请上传身份证照片")
    return flag


def test_the_student_is_told_once_by_email_when_the_returned_flag_closes(
    me, campaign, checklist, secretary, registrar, mailoutbox, django_capture_on_commit_callbacks
):
    me.email = "wxm@example.edu.cn"
    me.save(update_fields=["email"])
    flag = returned_flag(me, checklist, secretary)
    mailoutbox.clear()

    with time_machine.travel(campaign.departments_close_at + datetime.timedelta(minutes=5), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            services.campaigns_close_due()
        with django_capture_on_commit_callbacks(execute=True):
            services.campaigns_close_due()  # the beat's next run: nothing new

        (mail,) = mailoutbox
        assert mail.to == ["wxm@example.edu.cn"]
        assert "报错已关闭" in mail.subject
        assert "姓名" in mail.body and "逾期未重新提交" in mail.body
        assert f"/flags/{flag.pk}/" in mail.body
        assert Notification.objects.get().status == Notification.Status.SENT
        assert Message.objects.filter(user=me.user, text__contains="已关闭").count() == 1

        # The departments' deadline moved later reopens the flag; closed again at the new deadline, no second e-mail.
        campaign.refresh_from_db()
        campaign.departments_close_at = timezone.now() + datetime.timedelta(hours=1)
        services.campaign_save(campaign=campaign, cohorts=list(campaign.cohorts.all()), by=registrar)
        assert Flag.objects.get(pk=flag.pk).status == S.RETURNED

    with time_machine.travel(campaign.departments_close_at + datetime.timedelta(minutes=5), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            services.campaigns_close_due()
        assert Flag.objects.get(pk=flag.pk).status == S.NOT_RESUBMITTED
        assert len(mailoutbox) == 1


def test_a_student_without_an_email_is_reached_on_the_next_channel(
    me, campaign, checklist, secretary, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.REMINDER_CHANNELS = ["email", "console"]
    returned_flag(me, checklist, secretary)
    with time_machine.travel(campaign.departments_close_at + datetime.timedelta(minutes=5), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            services.campaigns_close_due()
    rows = dict(Notification.objects.values_list("channel", "status"))
    assert rows == {"email": Notification.Status.SKIPPED, "console": Notification.Status.SENT}
    assert not mailoutbox
