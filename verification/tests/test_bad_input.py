"""Bad claimed values, double submits, two tabs, stale forms and other people's URLs."""

import datetime
import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from students.models import Cohort, Student
from students.tests.factories import another_id_number
from verification import evidence as evidence_files
from verification import services
from verification.models import Checklist, Evidence, FieldCheck, Flag, FlagEvent

from .factories import CampaignFactory, png_bytes, student_with_account, upload
from .pages import checklist_url, confirm, confirm_all, flag, flag_url, html, messages_of, text, version_of

pytestmark = pytest.mark.django_db

S = Flag.Status


def evidence():
    return upload("证明.png", png_bytes(), "image/png")


# ---------------------------------------------------------------------------
# Claimed values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, claimed, message",
    [
        ("CSRQ", "2007-02-30", "无法识别的日期“2007-02-30”"),
        ("CSRQ", "去年三月", "无法识别的日期"),
        ("XM", "王小明2", "姓名不能包含数字"),
        ("RXRQ", "2025-13-01", "无法识别的日期"),
    ],
)
def test_an_unreadable_claimed_value_is_refused_with_the_reason(me_client, me, campaign, code, claimed, message):
    response = flag(me_client, campaign, code, claimed, version=me.version, files=[evidence()])

    assert response.status_code == 200
    assert message in html(response)
    assert not Flag.objects.exists() and not Evidence.objects.exists()


def test_an_id_number_with_a_wrong_check_digit_is_refused(me_client, me, campaign):
    good = another_id_number(me)
    wrong = good[:17] + ("0" if good[17] != "0" else "1")

    response = flag(me_client, campaign, "SFZH", wrong, version=me.version, files=[evidence()])

    assert response.status_code == 200
    assert f"身份证号码校验位错误：按前 17 位应为 {good[17]}" in html(response)
    assert not Flag.objects.exists()

    flag(me_client, campaign, "SFZH", good.lower(), version=me.version, files=[evidence()])
    assert Flag.objects.get().claimed_value == good


def test_the_service_validates_claims_too(me, checklist):
    with pytest.raises(services.VerificationError, match="无法识别的日期"):
        services.field_flag(
            checklist_id=checklist.pk,
            field_code="CSRQ",
            claimed_value="2007-02-30",
            record_version=me.version,
            by=me.user,
        )
    with pytest.raises(services.VerificationError, match="请从列表中选择"):
        services.field_flag(
            checklist_id=checklist.pk, field_code="XB", claimed_value="未知", record_version=me.version, by=me.user
        )
    assert not Flag.objects.exists() and not FieldCheck.objects.exists()


def test_a_claimed_date_equal_to_the_record_is_refused(me_client, me, campaign):
    response = flag(me_client, campaign, "CSRQ", "2007年3月14日", version=me.version, files=[evidence()])

    assert "填写的正确值与学信网记录相同" in html(response)
    assert not Flag.objects.exists()


# ---------------------------------------------------------------------------
# Double submits and two tabs
# ---------------------------------------------------------------------------


def test_a_double_submit_keeps_one_flag_and_one_copy_of_its_file(me_client, me, campaign, checklist):
    for _ in range(2):
        response = flag(
            me_client, campaign, "XB", "女", version=me.version, explanation="户口簿为女", files=[evidence()]
        )
        assert response.status_code == 200

    item = Flag.objects.get()
    assert (item.claimed_value, item.status) == ("女", S.SUBMITTED)
    assert item.evidence.count() == 1
    assert len(list(evidence_files.evidence_dir().rglob("*.png"))) == 1  # the second copy is not kept on disk
    assert FieldCheck.objects.filter(checklist=checklist, field_code="XB").count() == 1
    assert "已上传 1 个文件" in html(me_client.get(flag_url(campaign, "XB")))


def test_confirm_in_one_tab_then_flag_in_the_other(me_client, me, campaign, checklist):
    version = version_of(me)  # both tabs were opened now
    confirm(me_client, campaign, "BH", version=version)

    flag(me_client, campaign, "BH", "计算2502", version=version)

    answers = FieldCheck.objects.filter(checklist=checklist, field_code="BH")
    assert [a.status for a in answers] == [FieldCheck.Status.FLAGGED]
    assert Flag.objects.filter(status__in=Flag.OPEN).count() == 1
    page = html(me_client.get(checklist_url(campaign)))
    assert "计算2502" in page and "核对中" in page


def test_flag_in_one_tab_then_confirm_in_the_other(me_client, me, campaign, checklist):
    version = version_of(me)
    flag(me_client, campaign, "BH", "计算2502", version=version)

    confirm(me_client, campaign, "BH", version=version)

    answers = FieldCheck.objects.filter(checklist=checklist, field_code="BH")
    assert [a.status for a in answers] == [FieldCheck.Status.CONFIRMED]
    item = Flag.objects.get()
    assert item.status == S.WITHDRAWN
    assert item.events.last().note == "学生改为确认正确"
    assert not Flag.objects.filter(status__in=Flag.OPEN).exists()


def test_two_tabs_flagging_the_same_field_keep_one_flag_with_the_last_value(me_client, me, campaign):
    version = version_of(me)
    flag(me_client, campaign, "BH", "计算2502", version=version)
    flag(me_client, campaign, "BH", "计算2503", version=version)

    item = Flag.objects.get()
    assert item.claimed_value == "计算2503"
    assert list(item.events.values_list("action", flat=True)) == [
        FlagEvent.Action.SUBMITTED,
        FlagEvent.Action.AMENDED,
    ]


def test_confirm_all_twice_keeps_one_answer_per_field(me_client, me, campaign, checklist):
    confirm_all(me_client, campaign, version=me.version)
    confirm_all(me_client, campaign, version=me.version)

    assert FieldCheck.objects.filter(checklist=checklist).count() == len(campaign.checked_fields())
    checklist.refresh_from_db()
    assert checklist.state == Checklist.State.CONFIRMED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_double_click_creates_one_flag(me, checklist, campaign):
    clients = [Client(), Client()]
    for client in clients:
        client.force_login(me.user)
    barrier = threading.Barrier(2)
    statuses = []

    def click(client):
        try:
            barrier.wait(timeout=10)
            response = flag(client, campaign, "BH", "计算2502", version=me.version, follow=False)
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert statuses == [302, 302]
    assert Flag.objects.count() == 1
    assert FieldCheck.objects.filter(checklist=checklist, field_code="BH").count() == 1


# ---------------------------------------------------------------------------
# Stale forms
# ---------------------------------------------------------------------------

STALE = "你的学籍信息在你打开页面后已更新，请查看最新信息后重新核对。"


def bump_version(student):
    Student.objects.filter(pk=student.pk).update(version=student.version + 1, class_name="计算2509")


def test_a_stale_confirm_is_refused_and_nothing_applied(me_client, me, campaign, checklist):
    opened = version_of(me)
    bump_version(me)

    response = confirm(me_client, campaign, "BH", version=opened)

    assert STALE in messages_of(response)
    assert not FieldCheck.objects.exists()


def test_a_stale_flag_form_is_refused_and_nothing_applied(me_client, me, campaign):
    opened = version_of(me)
    bump_version(me)

    response = flag(me_client, campaign, "XB", "女", version=opened, files=[evidence()])

    assert STALE in messages_of(response)
    assert not Flag.objects.exists() and not Evidence.objects.exists() and not FieldCheck.objects.exists()


def test_a_stale_amendment_is_refused_and_the_flag_kept(me_client, me, campaign, secretary):
    flag(me_client, campaign, "BH", "计算2502", version=me.version)
    item = Flag.objects.get()
    services.flag_transition(flag_id=item.pk, to=S.RETURNED, by=secretary, note="班号写错")
    opened = version_of(me)
    bump_version(me)

    response = flag(me_client, campaign, "BH", "计算2503", version=opened)

    assert STALE in messages_of(response)
    item.refresh_from_db()
    assert (item.claimed_value, item.status) == ("计算2502", S.RETURNED)


def test_a_form_without_its_version_is_refused(me_client, me, campaign):
    response = me_client.post(reverse("verification:field_confirm", args=[campaign.pk, "BH"]), follow=True)

    assert "页面已过期，请刷新后重试。" in messages_of(response)
    assert not FieldCheck.objects.exists()


# ---------------------------------------------------------------------------
# Other people's records by URL
# ---------------------------------------------------------------------------


@pytest.fixture
def neighbour(other_department, cohort):
    """A student of the same campaign, in another department."""
    return student_with_account(department=other_department, cohort=cohort)


@pytest.fixture
def neighbours_flag(neighbour, campaign):
    services.campaign_sync_students(campaign=campaign)
    checklist = campaign.checklists.get(student=neighbour)
    return services.field_flag(
        checklist_id=checklist.pk,
        field_code="XB",
        claimed_value="女",
        files=[evidence()],
        record_version=neighbour.version,
        by=neighbour.user,
    )


def test_another_students_flag_and_evidence_are_404(me_client, neighbours_flag):
    item = neighbours_flag

    assert me_client.get(reverse("verification:flag_detail", args=[item.pk])).status_code == 404
    assert me_client.post(reverse("verification:flag_withdraw", args=[item.pk])).status_code == 404
    evidence_id = item.evidence.get().pk
    assert me_client.get(reverse("verification:evidence_download", args=[evidence_id])).status_code == 404
    item.refresh_from_db()
    assert item.status == S.SUBMITTED


def test_a_campaign_the_student_is_not_in_is_404(me_client, me, campaign):
    other_cohort = Cohort.objects.create(admission_year=2024, level="本科")
    theirs = CampaignFactory(name="2024级毕业核对", cohorts=[other_cohort])
    not_yet = CampaignFactory(
        name="下一轮",
        cohorts=[me.cohort],
        opens_at=timezone.now() + datetime.timedelta(days=3),
        closes_at=timezone.now() + datetime.timedelta(days=10),
    )

    for target in (theirs, not_yet):
        assert me_client.get(checklist_url(target)).status_code == 404
        assert confirm(me_client, target, "XM", version=me.version, follow=False).status_code == 404
        assert me_client.get(flag_url(target, "XM")).status_code == 404
    assert not FieldCheck.objects.exists()


def test_staff_have_no_checklist_of_their_own(client, secretary, campaign):
    client.force_login(secretary)

    assert client.get(checklist_url(campaign)).status_code == 404


def test_a_secretary_of_another_department_cannot_see_the_evidence(client, other_secretary, secretary, me, checklist):
    item = services.field_flag(
        checklist_id=checklist.pk,
        field_code="XB",
        claimed_value="女",
        files=[evidence()],
        record_version=me.version,
        by=me.user,
    )
    url = reverse("verification:evidence_download", args=[item.evidence.get().pk])

    client.force_login(other_secretary)
    assert client.get(url).status_code == 404
    client.force_login(secretary)
    assert client.get(url).status_code == 200


def test_every_change_is_kept_with_its_actor(me_client, me, campaign, secretary):
    flag(me_client, campaign, "BH", "计算2502", version=me.version)
    item = Flag.objects.get()
    services.flag_transition(flag_id=item.pk, to=S.RETURNED, by=secretary, note="请写完整班号")
    flag(me_client, campaign, "BH", "计算机2502", version=me.version, explanation="已改")

    events = list(FlagEvent.objects.filter(flag=item))
    assert [(e.to_status, e.actor) for e in events] == [
        (S.SUBMITTED, me.user),
        (S.RETURNED, secretary),
        (S.SUBMITTED, me.user),
    ]
    assert all(e.created_at is not None for e in events)
    assert "请写完整班号" in text(html(me_client.get(reverse("verification:flag_detail", args=[item.pk]))))
