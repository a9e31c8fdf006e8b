"""An individual extension is visible where the student and their class look: my checks, the check, the class."""

import datetime

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from verification import services

from .factories import CampaignFactory, student_with_account
from .pages import html, text

pytestmark = pytest.mark.django_db


def test_the_student_and_the_class_see_the_individual_extension(
    client, me, campaign, checklist, secretary, department, cohort
):
    classmate = student_with_account(department=department, cohort=cohort, class_group=me.class_group, name="李四")
    services.campaign_sync_students(campaign=campaign)
    CampaignFactory(name="照片核对", cohorts=[cohort])  # a second check: my checks lists both
    after = campaign.closes_at + datetime.timedelta(hours=1)
    until = after + datetime.timedelta(days=5)
    with time_machine.travel(after, tick=False):
        services.campaigns_close_due()
        services.checklist_extend(checklist_id=checklist.pk, until=until, by=secretary, note="住院")
        link = services.progress_link_create(campaign=campaign, class_group=me.class_group, by=secretary)
        local = timezone.localtime(until)
        shown = f"{local:%m-%d %H:%M}"

        client.force_login(me.user)
        mine = text(html(client.get(reverse("verification:my_checks"))))
        assert f"个人延期至：{local:%Y-%m-%d %H:%M}" in mine
        check = text(html(client.get(reverse("verification:checklist", args=[campaign.pk]))))
        assert "（个人延期）" in check

        client.force_login(classmate.user)
        assert "个人延期" not in text(html(client.get(reverse("verification:checklist", args=[campaign.pk]))))

        client.logout()
        page = text(html(client.get(reverse("class_progress_public", args=[link.token]))))
        assert f"王小明（个人延期至 {shown}）" in page
        assert "李四（" not in page and "李四" in page

        client.force_login(secretary)
        staff = text(
            html(client.get(reverse("workspace:class_detail", args=[me.class_group.pk]), {"campaign": campaign.pk}))
        )
        assert f"个人延期至 {shown}" in staff


def test_the_class_monitor_sees_the_individual_extension_after_signing_in(
    client, me, campaign, checklist, secretary, department, cohort
):
    monitor = student_with_account(department=department, cohort=cohort, class_group=me.class_group, name="李四")
    services.campaign_sync_students(campaign=campaign)
    me.class_group.monitors.add(monitor.user)
    after = campaign.closes_at + datetime.timedelta(hours=1)
    until = after + datetime.timedelta(days=5)
    with time_machine.travel(after, tick=False):
        services.campaigns_close_due()
        services.checklist_extend(checklist_id=checklist.pk, until=until, by=secretary, note="住院")

        client.force_login(monitor.user)
        page = text(html(client.get(reverse("verification:class_progress"))))
        assert f"王小明（个人延期至 {timezone.localtime(until):%m-%d %H:%M}）" in page
        assert "李四（" not in page and "李四" in page
