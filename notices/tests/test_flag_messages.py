"""A student hears in the portal when a flag of theirs changes state, and the badge counts what is unread."""

import re

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from notices.models import Message
from verification import services
from verification.models import Flag
from verification.tests.factories import CampaignFactory, student_with_account

from .cast import html, text

pytestmark = pytest.mark.django_db
S = Flag.Status


@pytest.fixture
def me(department):
    return student_with_account(department=department, name="王小明")


@pytest.fixture
def campaign(me):
    return CampaignFactory(cohorts=[me.cohort])


@pytest.fixture
def me_client(me):
    browser = Client()
    browser.force_login(me.user)
    return browser


@pytest.fixture
def a_flag(me, campaign, django_capture_on_commit_callbacks):
    checklist = campaign.checklists.get(student=me)
    with django_capture_on_commit_callbacks(execute=True):
        return services.field_flag(
            checklist_id=checklist.pk,
            field_code="CSRQ",
            claimed_value="2007-03-15",
            explanation="应与身份证一致",
            record_version=me.version,
            by=me.user,
        )


def move(flag, to, by, capture, note=""):
    with capture(execute=True):
        services.flag_transition(flag_id=flag.pk, to=to, by=by, note=note)


def badge(page: str) -> str | None:
    match = re.search(r'class="badge"[^>]*>(\d+)<', page)
    return match.group(1) if match else None


def messages_page(client) -> str:
    response = client.get(reverse("notices:message_list"))
    assert response.status_code == 200
    return html(response)


def test_a_returned_flag_tells_the_student_why_with_a_link_to_it(
    me_client, a_flag, secretary, django_capture_on_commit_callbacks
):
    assert not Message.objects.exists()  # the student's own submit is not news to them

    move(a_flag, S.RETURNED, secretary, django_capture_on_commit_callbacks, note="请上传户口簿本人页")

    page = messages_page(me_client)
    assert "你的“出生日期”报错已被退回：请上传户口簿本人页" in text(page)
    assert f'href="{reverse("verification:flag_detail", args=[a_flag.pk])}"' in page


def test_each_step_on_to_the_correction_is_told(
    me_client, me, a_flag, secretary, registrar, django_capture_on_commit_callbacks
):
    move(a_flag, S.FORWARDED, secretary, django_capture_on_commit_callbacks)
    move(a_flag, S.ACCEPTED, registrar, django_capture_on_commit_callbacks)
    move(a_flag, S.CORRECTED, registrar, django_capture_on_commit_callbacks)

    page = text(messages_page(me_client))
    assert "你的“出生日期”报错已通过院系审核，已转学籍科处理。" in page
    assert "你的“出生日期”报错已被学籍科受理。" in page
    assert "你的“出生日期”报错学信网已更正" in page
    assert Message.objects.filter(user=me.user).count() == 3


def test_a_correction_arriving_with_an_import_is_told(me, me_client, campaign, django_capture_on_commit_callbacks):
    checklist = campaign.checklists.get(student=me)
    with django_capture_on_commit_callbacks(execute=True):
        flag = services.field_flag(
            checklist_id=checklist.pk,
            field_code="BH",
            claimed_value="计算机2599",
            record_version=me.version,
            by=me.user,
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.roster_changes_apply(changes={me.pk: {"class_name": (me.class_name, "计算机2599")}})

    flag.refresh_from_db()
    assert flag.status == S.CORRECTED
    [message] = Message.objects.filter(user=me.user)
    assert message.text.startswith("你的“班级”报错学信网已更正")
    assert message.url == reverse("verification:flag_detail", args=[flag.pk])


def test_the_students_own_withdrawal_sends_no_message(me, a_flag, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.flag_withdraw(flag_id=a_flag.pk, by=me.user)
    assert not Message.objects.exists()


def test_no_message_when_the_change_is_rolled_back(a_flag, secretary, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            services.flag_transition(flag_id=a_flag.pk, to=S.RETURNED, by=secretary, note="退回")
            raise RuntimeError("the request failed after the move")
    assert not Message.objects.exists()


def test_the_badge_counts_unread_messages_and_drops_after_reading(
    me_client, a_flag, secretary, django_capture_on_commit_callbacks
):
    assert badge(html(me_client.get(reverse("notices:help_index")))) is None
    move(a_flag, S.RETURNED, secretary, django_capture_on_commit_callbacks, note="照片不清楚")
    with django_capture_on_commit_callbacks(execute=True):
        services.flag_amend(
            flag_id=a_flag.pk, claimed_value="2007-03-15", explanation="已补充", record_version=1, by=a_flag.created_by
        )
    move(a_flag, S.FORWARDED, secretary, django_capture_on_commit_callbacks)

    assert badge(html(me_client.get(reverse("notices:help_index")))) == "2"
    page = messages_page(me_client)  # shows them as new this once; the badge has already gone
    assert page.count('class="unread-tag"') == 2
    assert badge(page) is None

    assert badge(html(me_client.get(reverse("notices:help_index")))) is None
    assert 'class="unread-tag"' not in messages_page(me_client)


def test_messages_are_private_to_their_user(
    client, me, a_flag, secretary, department, django_capture_on_commit_callbacks
):
    move(a_flag, S.RETURNED, secretary, django_capture_on_commit_callbacks, note="请上传户口簿本人页")
    classmate = student_with_account(department=department)
    client.force_login(classmate.user)
    assert "请上传户口簿本人页" not in messages_page(client)
    assert Message.objects.get().read_at is None
