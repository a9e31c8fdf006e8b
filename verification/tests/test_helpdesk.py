"""The registrar office's help desk, through real requests: a student's report becomes a ticket in the
registrar's queue at once, staff assign, move and answer it, the student reads the answer; the department
reads its students' tickets only; the close of a campaign leaves a not-found student waiting, not overdue."""

import datetime
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notices.models import Message
from students.tests.factories import UserFactory
from verification import helpdesk, services
from verification.models import Checklist, SupportEvent, SupportRequest

from .factories import CampaignFactory, student_with_account
from .pages import checklist_url, html, messages_of, text
from .shared_cast import SharedCast, fixtures_of

pytestmark = pytest.mark.django_db

T = SupportRequest.Status


def report(client, campaign, kind="not_found", note="换电脑也查不到我的学籍"):
    return client.post(reverse("verification:support_request", args=[campaign.pk, kind]), {"note": note}, follow=True)


def queue(client, **query):
    return client.get(reverse("workspace:ticket_queue"), query)


def act(client, ticket, **data):
    return client.post(reverse("workspace:ticket_act", args=[ticket.pk]), data, follow=True)


def queue_rows(page: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", page, re.S).group(1)
    return [text(row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


@pytest.fixture(scope="module")
def shared_cast(module_rows):
    """conftest.py's cast, built once for the module; each persona signed in once (see ``shared_cast.py``)."""
    return SharedCast(module_rows)


@pytest.fixture
def cast(db, shared_cast):
    return shared_cast.copy()


@pytest.fixture
def sign_in(shared_cast):
    return shared_cast.sign_in


globals().update(
    fixtures_of(
        "department", "other_department", "cohort", "registrar", "secretary", "other_secretary", "me", "campaign"
    )
)


@pytest.fixture
def me_client(client, me, sign_in):
    sign_in(client, me.user)
    return client


@pytest.fixture
def filed(me_client, campaign, checklist):
    report(me_client, campaign)
    return checklist.support_requests.get()


def test_a_not_found_report_reaches_the_registrar_and_the_answer_reaches_the_student(
    me_client, me, campaign, checklist, registrar, sign_in
):
    sent = report(me_client, campaign)
    assert "已告知学籍科，我们会尽快联系你。" in messages_of(sent)

    # The registrar's queue shows it right away: who, what, when, status.
    client = Client()
    sign_in(client, registrar)
    rows = queue_rows(html(queue(client)))
    assert len(rows) == 1
    assert me.student_number in rows[0] and me.name in rows[0] and "学信网上查不到我的学籍" in rows[0]
    assert "待处理" in rows[0] and "等待学籍科处理" in rows[0]

    ticket = checklist.support_requests.get()
    page = html(client.get(reverse("workspace:ticket_detail", args=[ticket.pk])))
    assert "换电脑也查不到我的学籍" in page and me.masked_id_number in page and me.id_number not in page

    answered = act(client, ticket, action="reply", text="已在学信网为你补录学籍，明天再登录查看。")
    assert (
        "已回复学生：学生会在站内消息和核对页面看到回复，并通过提醒渠道（企业微信、钉钉或邮件等）收到通知。"
        in messages_of(answered)
    )
    ticket.refresh_from_db()
    assert ticket.status == T.IN_PROGRESS  # answering a new ticket takes it on

    # The student reads the answer on their checklist and in their messages.
    page = text(html(me_client.get(checklist_url(campaign))))
    assert "学信网上查不到我的学籍（处理中）" in page
    assert "已在学信网为你补录学籍，明天再登录查看。" in page
    message = Message.objects.get(user=me.user)
    assert "已在学信网为你补录学籍" in message.text and message.url.startswith(checklist_url(campaign))
    assert "已在学信网为你补录学籍" in html(me_client.get(reverse("notices:message_list")))


def test_staff_assign_move_and_close_a_ticket_and_the_history_says_who_and_when(client, filed, registrar, sign_in):
    colleague = UserFactory(role="registrar", username="registrar2", first_name="李老师")
    sign_in(client, registrar)

    act(client, filed, action="assign", assignee=colleague.pk)
    filed.refresh_from_db()
    assert filed.assignee == colleague and filed.status == T.IN_PROGRESS

    # The queue filters by assignee and status.
    assert len(queue_rows(html(queue(client, assignee=colleague.pk)))) == 1
    assert queue_rows(html(queue(client, assignee="none"))) == ["没有符合条件的求助。"]
    assert queue_rows(html(queue(client, status="new"))) == ["没有符合条件的求助。"]

    act(client, filed, action="reply", text="请提供身份证正反面照片。", to=T.RESOLVED)
    filed.refresh_from_db()
    assert filed.status == T.RESOLVED and filed.resolved_at is not None
    # A resolved ticket leaves the default queue (open ones) but stays under "all".
    assert queue_rows(html(queue(client))) == ["没有符合条件的求助。"]
    assert len(queue_rows(html(queue(client, status="all")))) == 1

    refused = act(client, filed, action="status", to=T.NOT_A_PROBLEM)
    assert "该求助不能从“已解决”改为“无需处理”" in messages_of(refused)
    act(client, filed, action="status", to=T.IN_PROGRESS)  # reopened

    events = list(filed.events.values_list("action", "to_status", "actor__username"))
    assert events == [
        (SupportEvent.Action.ASSIGNED, "", "registrar1"),
        (SupportEvent.Action.STATUS, T.IN_PROGRESS, "registrar1"),
        (SupportEvent.Action.REPLY, "", "registrar1"),
        (SupportEvent.Action.STATUS, T.RESOLVED, "registrar1"),
        (SupportEvent.Action.STATUS, T.IN_PROGRESS, "registrar1"),
    ]
    page = text(html(client.get(reverse("workspace:ticket_detail", args=[filed.pk]))))
    assert "指定处理人：李老师" in page and "状态改为“已解决”" in page and "请提供身份证正反面照片。" in page


def test_only_registrar_staff_can_be_assigned_and_an_empty_reply_is_refused(
    client, filed, registrar, secretary, sign_in
):
    sign_in(client, registrar)

    assert "只能指定学籍科工作人员处理" in messages_of(act(client, filed, action="assign", assignee=secretary.pk))
    assert "回复不能为空" in messages_of(act(client, filed, action="reply", text="  "))
    assert not filed.events.exists()
    assert not Message.objects.exists()


def test_the_department_reads_its_students_tickets_and_others_get_404(
    client, filed, me, secretary, other_secretary, department, sign_in
):
    sign_in(client, secretary)
    rows = queue_rows(html(queue(client)))
    assert len(rows) == 1 and me.name in rows[0]
    detail = client.get(reverse("workspace:ticket_detail", args=[filed.pk]))
    assert detail.status_code == 200
    assert 'name="action"' not in html(detail)  # read-only
    assert act(client, filed, action="reply", text="院系已知悉").status_code == 404
    assert not filed.events.exists()

    sign_in(client, other_secretary)
    assert queue_rows(html(queue(client))) == ["没有符合条件的求助。"]
    assert client.get(reverse("workspace:ticket_detail", args=[filed.pk])).status_code == 404
    assert queue(client, department=department.pk).status_code == 404


def test_the_queue_is_oldest_first_and_filters_by_kind_and_department(
    me_client, campaign, registrar, department, other_department, me, sign_in
):
    other = student_with_account(department=other_department, cohort=me.cohort, name="李外文")
    services.campaign_sync_students(campaign=campaign)
    older = services.support_request_create(
        checklist_id=campaign.checklists.get(student=other).pk,
        kind="id_registered",
        by=other.user,
    )
    SupportRequest.objects.filter(pk=older.pk).update(created_at=timezone.now() - datetime.timedelta(days=2))
    report(me_client, campaign, kind="other", note="学信网上的照片不是我")
    client = Client()
    sign_in(client, registrar)

    rows = queue_rows(html(queue(client)))
    assert ["李外文" in rows[0], me.name in rows[1]] == [True, True]
    assert "2 日" in rows[0]  # how long the student has waited
    assert [me.name in r for r in queue_rows(html(queue(client, kind="other")))] == [True]
    assert [me.name in r for r in queue_rows(html(queue(client, department=department.pk)))] == [True]
    assert queue(client, status="bogus").status_code == 404


def test_the_close_leaves_a_not_found_student_waiting_until_the_ticket_is_resolved(
    client, me, campaign, checklist, registrar, department, filed, sign_in
):
    silent = student_with_account(department=department, cohort=me.cohort, name="赵沉默")
    services.campaign_sync_students(campaign=campaign)
    after = campaign.closes_at + datetime.timedelta(minutes=1)

    assert services.campaign_close(campaign_id=campaign.pk, now=after) == 1

    states = dict(Checklist.objects.filter(campaign=campaign).values_list("student__name", "state"))
    assert states == {me.name: Checklist.State.NOT_STARTED, "赵沉默": Checklist.State.OVERDUE}
    sign_in(client, registrar)
    record = text(html(client.get(reverse("workspace:student_record", args=[me.pk]), {"campaign": campaign.pk})))
    assert "未开始 等待学籍科处理" in record
    assert "等待学籍科处理" not in html(
        client.get(reverse("workspace:student_record", args=[silent.pk]), {"campaign": campaign.pk})
    )

    # Once the registrar resolves it, the student who never answered is overdue like the others.
    act(client, filed, action="status", to=T.RESOLVED)
    checklist.refresh_from_db()
    assert checklist.state == Checklist.State.OVERDUE


def test_dashboards_count_open_tickets_in_scope(
    client, filed, registrar, secretary, other_secretary, campaign, sign_in
):
    def summary(page):
        return re.sub(r"<[^>]+>", "", re.search(r'<p class="card tickets-summary">(.*?)</p>', page, re.S).group(1))

    sign_in(client, registrar)
    act(client, filed, action="assign", assignee=registrar.pk)
    assert summary(html(client.get(reverse("workspace:school")))) == "学生求助：未解决 1（待处理 0，处理中 1）"

    sign_in(client, secretary)
    assert summary(html(client.get(reverse("workspace:dashboard")))) == "学生求助：未解决 1（待处理 0，处理中 1）"
    sign_in(client, other_secretary)
    assert summary(html(client.get(reverse("workspace:dashboard")))) == "学生求助：未解决 0（待处理 0，处理中 0）"


def test_the_status_machine_and_a_reopen_that_would_duplicate_an_open_ticket(me, checklist, filed, registrar):
    assert (T.RESOLVED, T.NEW) not in helpdesk.TRANSITIONS
    helpdesk.ticket_set_status(ticket_id=filed.pk, to=T.NOT_A_PROBLEM, by=registrar)
    second = services.support_request_create(checklist_id=checklist.pk, kind="not_found", by=me.user)
    assert second.pk != filed.pk and second.status == T.NEW

    with pytest.raises(helpdesk.HelpdeskError, match="已有一条同类的待处理求助"):
        helpdesk.ticket_set_status(ticket_id=filed.pk, to=T.IN_PROGRESS, by=registrar)
    filed.refresh_from_db()
    assert filed.status == T.NOT_A_PROBLEM


def test_a_second_campaign_ticket_is_reported_once_per_open_kind(me_client, me, campaign, checklist):
    report(me_client, campaign)
    report(me_client, campaign)
    assert checklist.support_requests.count() == 1
    second_campaign = CampaignFactory(cohorts=[me.cohort])
    report(me_client, second_campaign)
    assert SupportRequest.objects.filter(checklist__student=me).count() == 2


# ---------------------------------------------------------------------------
# The reply on the student's channel (the outbox), not only on the page
# ---------------------------------------------------------------------------


def test_a_reply_reaches_the_student_by_email_once(
    client, filed, me, registrar, campaign, settings, django_capture_on_commit_callbacks, sign_in
):
    from django.core import mail

    from notices import services as notice_services
    from notices.models import Notification

    settings.REMINDER_CHANNELS = ["email"]
    type(me).objects.filter(pk=me.pk).update(email="wxm@stu.example.edu.cn")
    me.refresh_from_db()
    sign_in(client, registrar)

    with django_capture_on_commit_callbacks(execute=True):
        act(client, filed, action="reply", text="已在学信网为你补录学籍，明天再登录查看。")

    (sent,) = mail.outbox
    assert sent.to == [me.email] and sent.subject == "【学籍核对】学籍科回复了你的求助"
    assert "已在学信网为你补录学籍，明天再登录查看。" in sent.body
    assert f"{settings.PORTAL_URL}{checklist_url(campaign)}" in sent.body
    # The reply told again (a signal handled twice, a retried request): nothing more is sent.
    reply = filed.events.get(action=SupportEvent.Action.REPLY)
    with django_capture_on_commit_callbacks(execute=True):
        notice_services.ticket_reply_notify(ticket=filed, reply=reply)
    assert len(mail.outbox) == 1
    assert Notification.objects.get(key=f"ticket-reply-{reply.pk}").status == "sent"


def test_a_reply_goes_to_the_students_wecom_when_the_school_reaches_students_there(
    client, filed, me, registrar, django_capture_on_commit_callbacks, sign_in
):
    from django.core import mail
    from django.core.cache import cache

    from notices.models import ChannelConfig
    from notices.tests.fake_providers import WECOM, Fake

    cache.clear()
    with Fake() as fake:
        options = {"corp_id": WECOM["corp"], "agent_id": WECOM["agent"], "api": fake.url}
        ChannelConfig.objects.create(name="wecom", enabled=True, position=1, options=options, secret=WECOM["secret"])
        ChannelConfig.objects.create(name="email", enabled=True, position=2)
        sign_in(client, registrar)

        with django_capture_on_commit_callbacks(execute=True):
            act(client, filed, action="reply", text="请带身份证到学籍科。")

        (card,) = [r["body"] for r in fake.of("wecom") if r.get("ok")]
    cache.clear()
    assert card["touser"] == me.student_number
    assert "请带身份证到学籍科。" in card["textcard"]["description"]
    assert mail.outbox == []  # reached on WeCom: not by e-mail as well
