"""A campaign's calendar: staged deadlines, the close, extensions that reopen, individual extensions,
returned flags amendable until the departments' deadline, and who is in (exclusions, inclusions).
"""

import datetime

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from students.tests.factories import CohortFactory, StudentFactory
from verification import dashboards, services
from verification.models import CampaignEvent, Checklist, Flag, FlagEvent

from .factories import student_with_account
from .pages import checklist_url, confirm, html, messages_of, text

pytestmark = pytest.mark.django_db
S = Flag.Status


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


def actions(campaign) -> list[str]:
    return list(CampaignEvent.objects.filter(campaign=campaign).values_list("action", flat=True))


def save(campaign, by, **changes):
    """The registrar edits the campaign (as the form does: the saved row with some fields changed)."""
    campaign = reload(campaign)
    for name, value in changes.items():
        setattr(campaign, name, value)
    return services.campaign_save(campaign=campaign, cohorts=list(campaign.cohorts.all()), by=by)


def flag_name(student, checklist):
    return services.field_flag(
        checklist_id=checklist.pk,
        field_code="XM",
        claimed_value="王晓明",
        explanation="身份证上是晓",
        record_version=student.version,
        by=student.user,
    )


def test_a_new_campaign_gets_the_later_deadlines_by_default(campaign):
    assert campaign.departments_close_at == campaign.closes_at + datetime.timedelta(days=2)
    assert campaign.registrar_close_at == campaign.departments_close_at + datetime.timedelta(days=3)


def test_the_campaign_form_takes_the_three_deadlines(client, registrar, campaign):
    client.force_login(registrar)
    page = html(client.get(reverse("verification:campaign_update", args=[campaign.pk])))
    assert "学生核对截止" in page and "院系汇总截止" in page and "学籍科上报截止" in page
    closes = timezone.localtime(campaign.closes_at)
    data = {
        "name": campaign.name,
        "kind": campaign.kind,
        "cohorts": [c.pk for c in campaign.cohorts.all()],
        "opens_at": f"{timezone.localtime(campaign.opens_at):%Y-%m-%dT%H:%M}",
        "closes_at": f"{closes:%Y-%m-%dT%H:%M}",
        "departments_close_at": f"{closes - datetime.timedelta(days=1):%Y-%m-%dT%H:%M}",
        "registrar_close_at": "",
        "field_codes": campaign.field_codes,
    }
    response = client.post(reverse("verification:campaign_update", args=[campaign.pk]), data)
    assert "院系汇总截止不能早于学生核对截止" in html(response)

    data["departments_close_at"] = f"{closes + datetime.timedelta(days=4):%Y-%m-%dT%H:%M}"
    response = client.post(reverse("verification:campaign_update", args=[campaign.pk]), data)
    assert response.status_code == 302
    campaign = reload(campaign)
    assert timezone.localtime(campaign.departments_close_at).date() == (closes + datetime.timedelta(days=4)).date()
    assert campaign.registrar_close_at == campaign.departments_close_at + datetime.timedelta(days=3)
    # The change is in the campaign's history, with who made it.
    event = CampaignEvent.objects.get(
        campaign=campaign, action=CampaignEvent.Action.DEADLINE_CHANGED, note__startswith="院系汇总截止："
    )
    assert event.actor == registrar
    page = html(client.get(reverse("verification:campaign_update", args=[campaign.pk])))
    assert "修改截止时间" in page


def test_moving_the_deadline_of_a_closed_campaign_later_reopens_it(me, me_client, campaign, checklist, registrar):
    """Probe: a closed campaign stayed closed after its deadline moved (``is_open`` needs ``closed_at`` empty)."""
    confirm(me_client, campaign, "XM", version=me.version)
    after = campaign.closes_at + datetime.timedelta(hours=1)
    with time_machine.travel(after, tick=False):
        assert services.campaigns_close_due() == 1
        assert reload(checklist).state == Checklist.State.OVERDUE

        save(campaign, registrar, closes_at=after + datetime.timedelta(days=3))

        campaign = reload(campaign)
        assert campaign.closed_at is None and campaign.is_open()
        # Back to what the answers say: one field answered.
        assert reload(checklist).state == Checklist.State.IN_PROGRESS
        # Closed, the deadlines moved (the later stages along with it), reopened.
        logged = actions(campaign)
        assert logged[0] == CampaignEvent.Action.CLOSED and logged[-1] == CampaignEvent.Action.REOPENED
        assert set(logged[1:-1]) == {CampaignEvent.Action.DEADLINE_CHANGED}
        me_client.force_login(me.user)  # the session from before the trip has expired
        response = confirm(me_client, campaign, "XB", version=me.version)
        assert "核对已截止，不能再修改" not in messages_of(response)
    # The later stages moved along, in order.
    assert campaign.departments_close_at >= campaign.closes_at


def test_a_returned_flag_stays_amendable_until_the_departments_deadline(me, me_client, campaign, checklist, secretary):
    """Probe: a flag returned just before the close was frozen and could never be amended."""
    services.checklist_confirm_all(checklist_id=checklist.pk, record_version=me.version, by=me.user)
    flag = flag_name(me, checklist)
    services.flag_transition(flag_id=flag.pk, to=S.RETURNED, by=secretary, note="请上传身份证照片")

    with time_machine.travel(campaign.closes_at + datetime.timedelta(hours=1), tick=False):
        services.campaigns_close_due()
        assert reload(checklist).state == Checklist.State.RETURNED
        me_client.force_login(me.user)
        page = html(me_client.get(checklist_url(campaign)))
        assert "被退回的报错请在" in page
        assert reverse("verification:field_flag", args=[campaign.pk, "XM"]) in page
        assert reverse("verification:field_confirm", args=[campaign.pk, "XB"]) not in page

        services.flag_amend(
            flag_id=flag.pk,
            claimed_value="王晓明",
            explanation="身份证上是晓，已上传",
            record_version=me.version,
            by=me.user,
        )
        assert reload(flag).status == S.SUBMITTED
        assert reload(checklist).state == Checklist.State.FLAGGED


def test_at_the_departments_deadline_returned_flags_close_as_not_resubmitted(
    me, campaign, checklist, secretary, registrar
):
    services.checklist_confirm_all(checklist_id=checklist.pk, record_version=me.version, by=me.user)
    flag = flag_name(me, checklist)
    services.flag_transition(flag_id=flag.pk, to=S.RETURNED, by=secretary, note="请上传身份证照片")

    with time_machine.travel(campaign.departments_close_at + datetime.timedelta(minutes=5), tick=False):
        services.campaigns_close_due()
        services.campaigns_close_due()  # safe to run twice

        flag = reload(flag)
        assert flag.status == S.NOT_RESUBMITTED and not flag.is_open
        assert flag.events.last().action == FlagEvent.Action.NOT_RESUBMITTED
        assert flag.events.filter(action=FlagEvent.Action.NOT_RESUBMITTED).count() == 1
        with pytest.raises(services.VerificationError, match="核对已截止"):
            services.flag_amend(flag_id=flag.pk, claimed_value="王晓明", record_version=me.version, by=me.user)
        assert CampaignEvent.Action.FLAGS_CLOSED in actions(campaign)

        # Extending the departments' deadline reopens what it closed.
        save(campaign, registrar, departments_close_at=timezone.now() + datetime.timedelta(days=1))
        flag = reload(flag)
        assert flag.status == S.RETURNED
        assert flag.events.last().action == FlagEvent.Action.REOPENED
        assert reload(checklist).state == Checklist.State.RETURNED


def test_an_individual_extension_keeps_one_student_open_after_the_close(
    me, me_client, campaign, checklist, secretary, department, cohort
):
    other = student_with_account(department=department, cohort=cohort)
    services.campaign_sync_students(campaign=campaign)
    after = campaign.closes_at + datetime.timedelta(hours=1)
    with time_machine.travel(after, tick=False):
        assert services.campaigns_close_due() == 2
        services.checklist_extend(
            checklist_id=checklist.pk, until=after + datetime.timedelta(days=5), by=secretary, note="住院"
        )
        assert reload(checklist).state == Checklist.State.NOT_STARTED
        me_client.force_login(me.user)
        response = confirm(me_client, campaign, "XM", version=me.version)
        assert "核对已截止，不能再修改" not in messages_of(response)
        assert reload(checklist).state == Checklist.State.IN_PROGRESS
        me_client.force_login(other.user)
        refused = confirm(me_client, campaign, "XM", version=other.version)
        assert "核对已截止，不能再修改" in messages_of(refused)
        event = CampaignEvent.objects.get(action=CampaignEvent.Action.EXTENDED)
        assert (event.student, event.actor) == (me, secretary) and "住院" in event.note

    with time_machine.travel(after + datetime.timedelta(days=5, minutes=1), tick=False):
        assert services.campaigns_close_due() == 1
        assert reload(checklist).state == Checklist.State.OVERDUE


def test_a_secretary_extends_and_excludes_from_the_student_record_page(client, me, campaign, checklist, secretary):
    client.force_login(secretary)
    record = reverse("workspace:student_record", args=[me.pk])
    page = html(client.get(record, {"campaign": campaign.pk}))
    assert "个人延期" in page and "不参加本次核对" in page

    until = timezone.localtime(campaign.closes_at + datetime.timedelta(days=3))
    response = client.post(
        reverse("workspace:checklist_extend", args=[me.pk]),
        {"campaign": campaign.pk, "until": f"{until:%Y-%m-%dT%H:%M}", "note": "出国交流"},
        follow=True,
    )
    assert "已设置个人延期" in text(html(response))
    assert reload(checklist).deadline == until.replace(second=0, microsecond=0)

    response = client.post(
        reverse("workspace:checklist_exclude", args=[me.pk]),
        {"campaign": campaign.pk, "reason": Checklist.Exclusion.ENLISTED, "note": ""},
        follow=True,
    )
    assert "参军入伍" in text(html(response))
    checklist = reload(checklist)
    assert checklist.state == Checklist.State.EXCLUDED and checklist.excluded_reason == "enlisted"

    response = client.post(reverse("workspace:checklist_restore", args=[me.pk]), {"campaign": campaign.pk}, follow=True)
    assert reload(checklist).state == Checklist.State.NOT_STARTED


def test_an_excluded_student_leaves_the_rate_and_the_reminders(me, campaign, checklist, secretary, department, cohort):
    from notices import reminders
    from notices.models import ReminderStage

    done = student_with_account(department=department, cohort=cohort)
    services.campaign_sync_students(campaign=campaign)
    services.checklist_confirm_all(
        checklist_id=campaign.checklists.get(student=done).pk, record_version=done.version, by=done.user
    )
    _rows, _cohorts, before = dashboards.school_progress(campaign=campaign)
    assert (before.total, before.completion_percent) == (2, 50)

    services.checklist_exclude(checklist_id=checklist.pk, reason=Checklist.Exclusion.SUSPENDED, by=secretary)

    _rows, _cohorts, after = dashboards.school_progress(campaign=campaign)
    assert (after.total, after.excluded, after.completion_percent) == (1, 1, 100)
    stage = ReminderStage.objects.filter(campaign=campaign).first()
    assert me.pk not in set(reminders.stage_recipients(stage))
    # Nor can the excluded student answer.
    with pytest.raises(services.VerificationError, match="不参加本次核对"):
        services.field_confirm(checklist_id=checklist.pk, field_code="XM", record_version=me.version, by=me.user)


def test_other_reasons_need_a_note_and_other_departments_cannot_exclude(
    me, campaign, checklist, other_secretary, secretary
):
    with pytest.raises(services.VerificationError, match="请填写说明"):
        services.checklist_exclude(checklist_id=checklist.pk, reason=Checklist.Exclusion.OTHER, by=secretary)
    with pytest.raises(services.NotFound):
        services.checklist_exclude(checklist_id=checklist.pk, reason=Checklist.Exclusion.SUSPENDED, by=other_secretary)
    assert reload(checklist).state == Checklist.State.NOT_STARTED


def test_a_student_of_another_cohort_is_included(campaign, registrar, department):
    returning = StudentFactory(department=department, cohort=CohortFactory(admission_year=2023, level="本科"))
    checklist = services.checklist_include(
        campaign=campaign, student=returning, reason=Checklist.Inclusion.RESUMED, by=registrar
    )
    assert (checklist.campaign, checklist.included_reason) == (campaign, "resumed")
    assert CampaignEvent.objects.filter(action=CampaignEvent.Action.INCLUDED, student=returning).exists()
    with pytest.raises(services.VerificationError, match="已在本次核对中"):
        services.checklist_include(
            campaign=campaign, student=returning, reason=Checklist.Inclusion.TRANSFERRED, by=registrar
        )


def test_a_department_signs_off_and_the_registrar_withdraws_it(
    client, me, campaign, checklist, secretary, registrar, department
):
    services.checklist_confirm_all(checklist_id=checklist.pk, record_version=me.version, by=me.user)
    client.force_login(secretary)
    response = client.post(
        reverse("workspace:department_sign_off"),
        {"campaign": campaign.pk, "department": department.pk, "remark": "已全部核对"},
        follow=True,
    )
    assert "已确认提交" in text(html(response))
    sign_off = campaign.sign_offs.get()
    assert (sign_off.total, sign_off.finished, sign_off.overdue, sign_off.remark) == (1, 1, 0, "已全部核对")
    with pytest.raises(services.VerificationError, match="已确认提交"):
        services.department_sign_off(campaign=campaign, department=department, by=secretary)

    client.force_login(registrar)
    page = text(html(client.get(reverse("workspace:school"), {"campaign": campaign.pk})))
    assert "院系确认提交" in page and "计算机学院 已确认" in page

    client.post(
        reverse("workspace:sign_off_withdraw", args=[sign_off.pk]),
        {"campaign": campaign.pk, "reason": "人数有误，请核实"},
    )
    assert reload(sign_off).withdrawn_at is not None
    page = text(html(client.get(reverse("workspace:school"), {"campaign": campaign.pk})))
    assert "计算机学院 未确认" in page
    assert actions(campaign)[-2:] == [CampaignEvent.Action.SIGNED_OFF, CampaignEvent.Action.SIGN_OFF_WITHDRAWN]


def test_a_student_missing_from_a_newer_full_roster_is_shown_to_registrar_staff_who_confirm(
    client, tmp_path, registrar
):
    from students.models import Cohort, Student
    from students.services import roster_import
    from students.tests.rosters import as_table, base_rows, write_xlsx

    from .factories import CampaignFactory

    def run(rows, name, **kwargs):
        header, data = as_table(rows)
        report = roster_import(
            path=write_xlsx(tmp_path / name, header, data), today=datetime.date(2025, 9, 15), **kwargs
        )
        assert not report.errors
        return report

    rows = base_rows(3)
    rows[2]["XJZT"] = "在籍（休学）"
    run(rows, "first.xlsx")
    campaign = CampaignFactory(cohorts=[Cohort.objects.get(admission_year=2025, level="本科")])
    # A 学籍状态 other than 在籍（注册学籍） is a data-quality finding.
    suspended = Student.objects.get(student_number=rows[2]["XH"])
    assert list(suspended.findings.values_list("field_code", "kind")) == [("XJZT", "roll_status")]

    run(rows[:2], "partial.xlsx")  # a partial file says nothing about the others
    assert not Student.objects.filter(not_in_roster__isnull=False).exists()
    run(rows[:2], "full.xlsx", full=True)
    missing = Student.objects.get(not_in_roster__isnull=False)
    assert missing == suspended  # never deleted

    client.force_login(registrar)
    page = html(client.get(reverse("workspace:findings")))
    assert "不在最新名单中" in page and missing.student_number in page
    client.post(
        reverse("workspace:checklist_exclude", args=[missing.pk]),
        {"campaign": campaign.pk, "reason": Checklist.Exclusion.NOT_IN_ROSTER},
    )
    checklist = campaign.checklists.get(student=missing)
    assert (checklist.state, checklist.excluded_reason) == (Checklist.State.EXCLUDED, "not_in_roster")
    assert 'id="not-in-roster"' not in html(client.get(reverse("workspace:findings")))

    run(rows, "again.xlsx", full=True)  # back in the roster
    assert not Student.objects.filter(not_in_roster__isnull=False).exists()
