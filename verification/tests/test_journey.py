"""A student's whole check through real HTTP requests: confirm, flag, returned, resubmitted, fixed, closed."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from students import fields as roll_fields
from students.errors import NotFound
from students.tests.factories import StudentFactory
from verification import services
from verification.models import Campaign, Checklist, Evidence, FieldCheck, Flag, FlagEvent

from .factories import CampaignFactory, png_bytes, student_with_account, upload
from .pages import (
    checklist_url,
    confirm,
    confirm_all,
    flag,
    flag_url,
    html,
    messages_of,
    row,
    text,
    version_of,
)

pytestmark = pytest.mark.django_db

S = Flag.Status


def test_campaign_save_gives_every_student_of_its_cohorts_a_checklist(me, cohort, department, registrar):
    classmate = student_with_account(department=department, cohort=cohort)
    StudentFactory(department=department)  # no cohort: not in the campaign
    now = timezone.now()

    campaign = services.campaign_save(
        campaign=Campaign(name="2025级新生学籍核对", opens_at=now, closes_at=now + datetime.timedelta(days=7)),
        cohorts=[cohort],
        by=registrar,
    )

    assert set(campaign.checklists.values_list("student_id", flat=True)) == {me.pk, classmate.pk}
    assert set(campaign.checklists.values_list("state", flat=True)) == {Checklist.State.NOT_STARTED}
    assert campaign.created_by == registrar
    # Saving again (an edit) does not duplicate anything.
    services.campaign_save(campaign=campaign, cohorts=[cohort], by=registrar)
    assert campaign.checklists.count() == 2


def test_registrar_creates_a_campaign_in_the_portal_and_the_student_sees_it(client, me, cohort, registrar):
    data = {
        "name": "2025级新生学籍核对",
        "kind": Campaign.Kind.NEW_STUDENTS,
        "cohorts": [cohort.pk],
        "opens_at": (timezone.localtime() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "closes_at": (timezone.localtime() + datetime.timedelta(days=14)).strftime("%Y-%m-%dT%H:%M"),
        "instructions": "请在 9 月 30 日前完成核对。",
        "field_codes": [f.code for f in roll_fields.ROLL_FIELDS if f.student_check != roll_fields.StudentCheck.HIDDEN],
    }
    client.force_login(me.user)
    assert client.post(reverse("verification:campaign_create"), data).status_code == 404
    assert not Campaign.objects.exists()

    client.force_login(registrar)
    response = client.post(reverse("verification:campaign_create"), data)

    assert response.status_code == 302
    campaign = Campaign.objects.get()
    assert "ZZMM" not in campaign.field_codes and "KSH" in campaign.field_codes
    client.force_login(me.user)
    page = html(client.get(checklist_url(campaign)))
    assert "2025级新生学籍核对" in page and "请在 9 月 30 日前完成核对。" in page


def test_campaign_save_refuses_a_deadline_before_the_opening(cohort):
    now = timezone.now()
    with pytest.raises(services.VerificationError, match="截止时间必须晚于开始时间"):
        services.campaign_save(
            campaign=Campaign(name="x", opens_at=now, closes_at=now - datetime.timedelta(hours=1)), cohorts=[cohort]
        )
    assert not Campaign.objects.exists()


def test_the_checklist_is_laid_out_like_the_chsi_card(me_client, me, campaign):
    response = me_client.get(checklist_url(campaign))

    assert response.status_code == 200
    page = html(response)
    assert "本科-示范大学-计算机科学与技术" in page
    checked = campaign.checked_fields()
    # Rows in CHSI's card order, each with CHSI's label and the record's value.
    codes_in_page = re.findall(r'<li id="field-([A-Z]+)"', page)
    assert codes_in_page == [f.code for f in checked]
    assert codes_in_page[:4] == ["XM", "XB", "CSRQ", "MZ"]
    assert "姓名" in row(page, "XM") and "王小明" in row(page, "XM")
    assert "出生日期" in row(page, "CSRQ") and "2007年03月14日" in row(page, "CSRQ")
    assert me.id_number in row(page, "SFZH")  # the student sees their own number in full
    assert "系（所、函授站）" in row(page, "XSH")
    for field in checked:
        assert "正确" in row(page, field.code) and flag_url(campaign, field.code) in row(page, field.code)
    assert "未开始" in page


def test_my_checks_leads_a_student_with_one_open_campaign_to_it(me_client, campaign):
    response = me_client.get(reverse("verification:my_checks"))

    assert response.status_code == 302 and response["Location"] == checklist_url(campaign)
    assert me_client.get(reverse("home"))["Location"] == reverse("verification:my_checks")


def test_whole_journey_flag_returned_amended_and_corrected(me_client, me, campaign, checklist, secretary, registrar):
    version = version_of(me)

    # Confirm one field: the value seen and the time are kept.
    response = confirm(me_client, campaign, "YXMC", version=version)
    assert response.status_code == 200
    answer = FieldCheck.objects.get(checklist=checklist, field_code="YXMC")
    assert (answer.status, answer.seen_value, answer.answered_by) == ("confirmed", "示范大学", me.user)
    assert "正确" in text(row(html(response), "YXMC"))
    assert "核对中" in html(response)

    # Flag 民族: an identity field, so the page lists what to bring and evidence is required.
    form_page = html(me_client.get(flag_url(campaign, "MZ")))
    assert "需要准备的证明材料" in form_page and "民族证明" in form_page
    refused = flag(me_client, campaign, "MZ", "回族", version=version, explanation="我是回族")
    assert "身份信息的更正需要上传证明材料" in html(refused)
    assert not Flag.objects.exists()

    response = flag(
        me_client,
        campaign,
        "MZ",
        "回族",
        version=version,
        explanation="户口簿上是回族",
        files=[upload("户口簿.png", png_bytes(), "image/png")],
    )
    assert response.redirect_chain[-1][0].startswith(checklist_url(campaign))
    item = Flag.objects.get()
    assert (item.field_code, item.recorded_value, item.claimed_value, item.status) == (
        "MZ",
        "汉族",
        "回族",
        S.SUBMITTED,
    )
    assert item.evidence.count() == 1
    mz_row = text(row(html(response), "MZ"))
    assert "回族" in mz_row and "已提交，待院系审核" in mz_row
    assert any("已提交“民族”的报错" in m for m in messages_of(response))

    # The department returns it with a reason; the student sees the reason.
    services.flag_transition(flag_id=item.pk, to=S.RETURNED, by=secretary, note="请上传公安机关出具的民族证明")
    page = html(me_client.get(checklist_url(campaign)))
    assert "被退回待修改" in page
    assert "已退回，请修改后重新提交" in text(row(page, "MZ"))
    assert "请上传公安机关出具的民族证明" in text(row(page, "MZ"))
    assert "请上传公安机关出具的民族证明" in html(me_client.get(flag_url(campaign, "MZ")))

    # The student amends (the earlier upload still counts) and resubmits.
    response = flag(
        me_client,
        campaign,
        "MZ",
        "回族",
        version=version,
        explanation="已补充派出所民族证明",
        files=[upload("民族证明.png", png_bytes(color="gray"), "image/png")],
    )
    item.refresh_from_db()
    assert item.status == S.SUBMITTED and item.explanation == "已补充派出所民族证明"
    assert item.evidence.count() == 2
    assert "已提交，待院系审核" in text(row(html(response), "MZ"))
    assert Flag.objects.count() == 1

    services.flag_transition(flag_id=item.pk, to=S.FORWARDED, by=secretary)
    services.flag_transition(flag_id=item.pk, to=S.ACCEPTED, by=registrar)
    assert "学籍科已受理" in text(row(html(me_client.get(checklist_url(campaign))), "MZ"))
    services.flag_transition(flag_id=item.pk, to=S.CORRECTED, by=registrar)

    page = html(me_client.get(checklist_url(campaign)))
    assert "学信网已更正" in text(row(page, "MZ"))
    history = list(FlagEvent.objects.filter(flag=item).values_list("action", "from_status", "to_status", "actor"))
    assert history == [
        (FlagEvent.Action.SUBMITTED, "", S.SUBMITTED, me.user.pk),
        (FlagEvent.Action.RETURNED, S.SUBMITTED, S.RETURNED, secretary.pk),
        (FlagEvent.Action.RESUBMITTED, S.RETURNED, S.SUBMITTED, me.user.pk),
        (FlagEvent.Action.FORWARDED, S.SUBMITTED, S.FORWARDED, secretary.pk),
        (FlagEvent.Action.ACCEPTED, S.FORWARDED, S.ACCEPTED, registrar.pk),
        (FlagEvent.Action.CORRECTED, S.ACCEPTED, S.CORRECTED, registrar.pk),
    ]
    detail = text(html(me_client.get(reverse("verification:flag_detail", args=[item.pk]))))
    assert f"退回学生修改 · {secretary.username} ：请上传公安机关出具的民族证明" in detail
    assert "修改后重新提交 · 王小明 ：已补充派出所民族证明" in detail
    assert "学籍科已受理 · registrar1" in detail
    assert "民族证明.png" in detail and "户口簿.png" in detail


def test_only_the_right_role_may_move_a_flag(me, checklist, secretary, registrar):
    item = services.field_flag(
        checklist_id=checklist.pk, field_code="BH", claimed_value="计算2502", record_version=me.version, by=me.user
    )

    with pytest.raises(NotFound):
        services.flag_transition(flag_id=item.pk, to=S.FORWARDED, by=me.user)  # a student cannot review
    with pytest.raises(services.VerificationError, match="退回时请填写原因"):
        services.flag_transition(flag_id=item.pk, to=S.RETURNED, by=secretary, note="  ")
    services.flag_transition(flag_id=item.pk, to=S.FORWARDED, by=secretary)
    with pytest.raises(services.VerificationError):
        services.flag_transition(flag_id=item.pk, to=S.ACCEPTED, by=secretary)  # registrar's move
    with pytest.raises(services.VerificationError):
        services.flag_transition(flag_id=item.pk, to=S.CORRECTED, by=registrar)  # skips 受理

    item.refresh_from_db()
    assert item.status == S.FORWARDED
    assert item.events.count() == 2


def test_a_flag_with_the_registrar_cannot_be_changed_by_the_student(me_client, me, campaign, checklist, secretary):
    item = services.field_flag(
        checklist_id=checklist.pk, field_code="BH", claimed_value="计算2502", record_version=me.version, by=me.user
    )
    services.flag_transition(flag_id=item.pk, to=S.FORWARDED, by=secretary)

    response = confirm(me_client, campaign, "BH", version=me.version)

    assert any("已转学籍科处理" in m for m in messages_of(response))
    item.refresh_from_db()
    assert item.status == S.FORWARDED
    assert FieldCheck.objects.get(checklist=checklist, field_code="BH").status == FieldCheck.Status.FLAGGED


def test_withdrawing_a_flag_leaves_the_field_unanswered(me_client, me, campaign, checklist):
    item = services.field_flag(
        checklist_id=checklist.pk, field_code="BH", claimed_value="计算2502", record_version=me.version, by=me.user
    )

    response = me_client.post(reverse("verification:flag_withdraw", args=[item.pk]), follow=True)

    item.refresh_from_db()
    assert item.status == S.WITHDRAWN
    assert not FieldCheck.objects.filter(checklist=checklist, field_code="BH").exists()
    assert "已撤回" in text(row(html(response), "BH"))
    assert item.events.last().actor == me.user


def test_confirm_all_needs_the_attestation_and_confirms_every_field(me_client, me, campaign, checklist):
    refused = confirm_all(me_client, campaign, version=me.version, attest=False)
    assert "请勾选确认声明" in messages_of(refused)
    assert not FieldCheck.objects.exists()

    response = confirm_all(me_client, campaign, version=me.version)

    assert "已确认全部信息正确，感谢你的核对。" in messages_of(response)
    checklist.refresh_from_db()
    assert checklist.state == Checklist.State.CONFIRMED
    assert checklist.attested_at is not None and checklist.finished_at is not None
    answers = dict(FieldCheck.objects.filter(checklist=checklist).values_list("field_code", "status"))
    assert answers == {f.code: FieldCheck.Status.CONFIRMED for f in campaign.checked_fields()}
    assert FieldCheck.objects.get(checklist=checklist, field_code="CSRQ").seen_value == "2007年03月14日"
    assert "已确认无误" in html(response)


@pytest.mark.parametrize("others_answered", [False, True], ids=["in-progress", "every-field-answered"])
def test_confirm_all_is_refused_while_a_field_is_flagged(me_client, me, campaign, checklist, others_answered):
    services.field_flag(
        checklist_id=checklist.pk, field_code="BH", claimed_value="计算2502", record_version=me.version, by=me.user
    )
    if others_answered:  # through the service: the page is what is tested next, not these answers
        for field in campaign.checked_fields():
            if field.code != "BH":
                services.field_confirm(
                    checklist_id=checklist.pk, field_code=field.code, record_version=me.version, by=me.user
                )
    state_before = Checklist.objects.get(pk=checklist.pk).state

    response = confirm_all(me_client, campaign, version=me.version)

    shown = messages_of(response)
    assert any("你有报错的字段" in m for m in shown)
    assert "已确认全部信息正确，感谢你的核对。" not in shown
    checklist.refresh_from_db()
    assert checklist.state == state_before and checklist.attested_at is None
    assert FieldCheck.objects.get(checklist=checklist, field_code="BH").status == FieldCheck.Status.FLAGGED
    assert Flag.objects.get().status == S.SUBMITTED


def test_after_a_flag_the_other_fields_are_confirmed_at_once(me_client, me, campaign, checklist):
    flag(me_client, campaign, "BH", "计算2502", version=me.version)
    confirm(me_client, campaign, "XM", version=me.version)
    page = html(me_client.get(checklist_url(campaign)))
    rest = len(campaign.checked_fields()) - 2
    assert f"确认其余 {rest} 项正确" in page
    assert reverse("verification:confirm_all", args=[campaign.pk]) not in page  # 全部正确 no longer applies
    url = reverse("verification:confirm_rest", args=[campaign.pk])

    refused = me_client.post(url, {"record_version": me.version}, follow=True)
    assert "请勾选确认声明" in messages_of(refused)
    assert FieldCheck.objects.filter(checklist=checklist).count() == 2

    response = me_client.post(url, {"record_version": me.version, "attest": "on"}, follow=True)

    assert "已确认其余各项正确。报错的项目由院系审核，结果会通知你。" in messages_of(response)
    answers = dict(FieldCheck.objects.filter(checklist=checklist).values_list("field_code", "status"))
    assert answers == {
        f.code: FieldCheck.Status.FLAGGED if f.code == "BH" else FieldCheck.Status.CONFIRMED
        for f in campaign.checked_fields()
    }
    assert Flag.objects.get().status == S.SUBMITTED
    checklist.refresh_from_db()
    assert checklist.state == Checklist.State.FLAGGED and checklist.attested_at is None
    assert reverse("verification:confirm_rest", args=[campaign.pk]) not in html(response)  # nothing left


def test_confirming_the_rest_of_a_stale_page_is_refused(me_client, me, campaign, checklist):
    flag(me_client, campaign, "BH", "计算2502", version=me.version)
    opened = version_of(me)
    me.class_name = "计算2509"
    me.version += 1
    me.save(update_fields=["class_name", "version"])

    response = me_client.post(
        reverse("verification:confirm_rest", args=[campaign.pk]),
        {"record_version": opened, "attest": "on"},
        follow=True,
    )

    assert any("已更新" in m for m in messages_of(response))
    assert FieldCheck.objects.filter(checklist=checklist).count() == 1


def test_the_message_after_flagging_is_next_to_the_field(me_client, me, campaign):
    response = flag(me_client, campaign, "BH", "计算2502", version=me.version)

    assert response.redirect_chain[-1][0].endswith("#field-BH")  # the page scrolls to the field on a phone
    page = html(response)
    assert "已提交“班级”的报错，院系审核后会通知你。" in text(row(page, "BH"))
    top = re.search(r'<ul class="messages">.*?</ul>', page, re.S)
    assert top is None or "已提交" not in top.group()


def test_the_answer_that_finishes_the_check_says_so(me_client, me, campaign, checklist):
    codes = [f.code for f in campaign.checked_fields()]
    for code in codes[:-1]:
        confirm(me_client, campaign, code, version=me.version, follow=False)
    # Every message the answers so far left, on one page (drawing the page after each answer took most of the time).
    assert not any("核对完全部项目" in m for m in messages_of(me_client.get(checklist_url(campaign))))

    response = confirm(me_client, campaign, codes[-1], version=me.version)

    assert "你已核对完全部项目，信息全部正确，感谢你的核对。" in text(row(html(response), codes[-1]))
    checklist.refresh_from_db()
    assert checklist.state == Checklist.State.CONFIRMED


def test_finishing_with_a_flag_says_the_department_reviews_it(me_client, me, campaign, checklist):
    codes = [f.code for f in campaign.checked_fields() if f.code != "BH"]
    for code in codes:  # through the service: the message of the answer that finishes is what is tested
        services.field_confirm(checklist_id=checklist.pk, field_code=code, record_version=me.version, by=me.user)

    response = flag(me_client, campaign, "BH", "计算2502", version=me.version)

    assert "你已核对完全部项目。报错的项目由院系审核，结果会通知你。" in messages_of(response)


def test_after_closing_the_checklist_is_read_only_and_silent_students_are_overdue(
    me_client, me, campaign, checklist, department, cohort
):
    silent = student_with_account(department=department, cohort=cohort)
    done = student_with_account(department=department, cohort=cohort)
    services.campaign_sync_students(campaign=campaign)
    services.checklist_confirm_all(
        checklist_id=campaign.checklists.get(student=done).pk, record_version=done.version, by=done.user
    )
    confirm(me_client, campaign, "XM", version=me.version)
    assert services.campaign_close(campaign_id=campaign.pk) == 0  # not due yet
    Campaign.objects.filter(pk=campaign.pk).update(closes_at=timezone.now() - datetime.timedelta(minutes=1))

    # Answering some fields but not all is not finishing: that student is overdue too.
    assert services.campaign_close(campaign_id=campaign.pk) == 2
    closed_at = Campaign.objects.get(pk=campaign.pk).closed_at
    assert services.campaign_close(campaign_id=campaign.pk) == 0  # safe to run twice

    states = dict(campaign.checklists.values_list("student_id", "state"))
    assert states == {
        me.pk: Checklist.State.OVERDUE,
        silent.pk: Checklist.State.OVERDUE,
        done.pk: Checklist.State.CONFIRMED,
    }
    assert Campaign.objects.get(pk=campaign.pk).closed_at == closed_at
    assert not FieldCheck.objects.filter(checklist__student=silent).exists()

    page = html(me_client.get(checklist_url(campaign)))
    assert "核对已截止，页面只读" in page
    assert reverse("verification:field_confirm", args=[campaign.pk, "XB"]) not in page
    assert reverse("verification:confirm_all", args=[campaign.pk]) not in page
    refused = confirm(me_client, campaign, "XB", version=me.version)
    assert "核对已截止，不能再修改" in messages_of(refused)
    refused = flag(me_client, campaign, "BH", "计算2502", version=me.version)
    assert "核对已截止，不能再修改" in html(refused)
    refused = confirm_all(me_client, campaign, version=me.version)
    assert any("核对已截止" in m for m in messages_of(refused))
    assert not Flag.objects.exists()
    assert list(FieldCheck.objects.filter(checklist=checklist).values_list("field_code", flat=True)) == ["XM"]

    me_client.force_login(silent.user)
    page = html(me_client.get(checklist_url(campaign)))
    assert "逾期未核对" in page and "已确认无误" not in page


def test_a_student_in_two_open_campaigns_chooses_one(me_client, me, campaign):
    second = CampaignFactory(name="2025级学籍信息补充核对", cohorts=[me.cohort])

    response = me_client.get(reverse("verification:my_checks"))

    assert response.status_code == 200
    page = html(response)
    assert checklist_url(campaign) in page and checklist_url(second) in page


def test_record_not_found_shows_the_help_before_it_is_sent(me_client, campaign, checklist):
    url = reverse("verification:support_request", args=[campaign.pk, "not_found"])

    page = html(me_client.get(url))
    assert "尝试绑定学籍" in page and "只有 5 次机会" in page
    assert not checklist.support_requests.exists()

    me_client.post(url, {"note": "换电脑也查不到"})
    response = me_client.post(url, {"note": "换电脑也查不到"}, follow=True)

    assert checklist.support_requests.count() == 1
    assert "学信网上查不到我的学籍（待处理）" in html(response)
    assert me_client.get(reverse("verification:support_request", args=[campaign.pk, "nope"])).status_code == 404


def test_evidence_is_kept_with_its_flag(me, checklist):
    item = services.field_flag(
        checklist_id=checklist.pk,
        field_code="XB",
        claimed_value="女",
        files=[upload("身份证.png", png_bytes(), "image/png")],
        record_version=me.version,
        by=me.user,
    )

    evidence = Evidence.objects.get()
    assert evidence.flag == item and evidence.uploaded_by == me.user
    assert evidence.original_name == "身份证.png" and evidence.content_type == "image/png"
