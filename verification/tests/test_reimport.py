"""A new roster for students in an open campaign: changed values reopen, claimed values correct flags.

Rosters go through ``students.services.roster_import``, which hands its
changes to ``verification.services.roster_changes_apply``.
"""

import datetime

import pytest
from django.utils import timezone

from students.models import Cohort, Student
from students.services import roster_import
from students.tests.factories import UserFactory
from students.tests.rosters import as_table, base_rows, write_xlsx
from verification import services
from verification.models import Campaign, Checklist, FieldCheck, Flag, FlagEvent

from .factories import CampaignFactory, png_bytes, upload
from .pages import checklist_url, confirm, confirm_all, flag, html, messages_of, row, text, version_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    return base_rows(2)


def import_rows(tmp_path, rows, name):
    header, data = as_table(rows)
    report = roster_import(path=write_xlsx(tmp_path / name, header, data), today=datetime.date(2025, 9, 15))
    assert not report.errors
    return report


@pytest.fixture
def students(tmp_path, rows):
    import_rows(tmp_path, rows, "first.xlsx")
    found = [Student.objects.get(student_number=r["XH"]) for r in rows]
    for student in found:
        student.user = UserFactory(username=student.student_number)
        student.save(update_fields=["user"])
    return found


@pytest.fixture
def campaign(students):
    return CampaignFactory(cohorts=[Cohort.objects.get(admission_year=2025, level="本科")])


def sign_in(client, student):
    client.force_login(student.user)
    return client


def answer(campaign, student, code):
    return FieldCheck.objects.get(checklist__campaign=campaign, checklist__student=student, field_code=code)


def state(campaign, student):
    return Checklist.objects.get(campaign=campaign, student=student).state


def test_a_confirmed_value_that_changes_is_reopened_showing_old_and_new(client, tmp_path, rows, students, campaign):
    alice, bob = students
    old_name = rows[0]["XM"]
    for student in students:
        response = confirm_all(sign_in(client, student), campaign, version=student.version)
        assert "已确认全部信息正确，感谢你的核对。" in messages_of(response)
    rows[0]["XM"] = old_name[0] + "新名"

    report = import_rows(tmp_path, rows, "second.xlsx")

    assert report.updated == 1
    reopened = answer(campaign, alice, "XM")
    assert reopened.status == FieldCheck.Status.REOPENED and reopened.previous_value == old_name
    assert answer(campaign, alice, "CSRQ").status == FieldCheck.Status.CONFIRMED
    assert state(campaign, alice) == Checklist.State.IN_PROGRESS
    assert state(campaign, bob) == Checklist.State.CONFIRMED
    page = html(sign_in(client, alice).get(checklist_url(campaign)))
    assert f"学籍数据已更新：{old_name} → {rows[0]['XM']}，请重新核对。" in text(row(page, "XM"))
    assert "学籍数据已更新" not in row(page, "CSRQ")

    # Confirming the new value closes the loop.
    response = confirm(client, campaign, "XM", version=version_of(alice))
    assert answer(campaign, alice, "XM").seen_value == rows[0]["XM"]
    assert state(campaign, alice) == Checklist.State.CONFIRMED
    assert "学籍数据已更新" not in row(html(response), "XM")


def test_a_reopened_student_keeps_their_finish_time_and_counts_apart_from_never_finished(
    tmp_path, rows, students, campaign
):
    """Probe: a re-import that changed a value erased finish times, so the rate and the chart dropped."""
    from verification import dashboards

    alice, _bob = students
    services.checklist_confirm_all(
        checklist_id=Checklist.objects.get(campaign=campaign, student=alice).pk,
        record_version=alice.version,
        by=alice.user,
    )
    finished_at = Checklist.objects.get(campaign=campaign, student=alice).finished_at
    chart_before = dashboards.daily_progress(campaign=campaign)
    rows[0]["XM"] = rows[0]["XM"][0] + "新名"

    import_rows(tmp_path, rows, "second.xlsx")

    checklist = Checklist.objects.get(campaign=campaign, student=alice)
    assert checklist.state == Checklist.State.IN_PROGRESS
    assert checklist.finished_at == finished_at
    _rows, _cohorts, total = dashboards.school_progress(campaign=campaign)
    assert (total.done, total.reopened, total.never_finished) == (0, 1, 1)
    # The chart's past days keep their finishes.
    assert dashboards.daily_progress(campaign=campaign) == chart_before


def test_the_same_roster_again_reopens_nothing(tmp_path, rows, students, campaign):
    alice = students[0]
    services.checklist_confirm_all(
        checklist_id=Checklist.objects.get(campaign=campaign, student=alice).pk,
        record_version=alice.version,
        by=alice.user,
    )

    import_rows(tmp_path, rows, "again.xlsx")

    assert not FieldCheck.objects.filter(status=FieldCheck.Status.REOPENED).exists()
    assert state(campaign, alice) == Checklist.State.CONFIRMED


def test_a_changed_birth_date_reopens_and_its_finding_shows_as_a_hint(client, tmp_path, rows, students, campaign):
    alice = students[0]
    confirm_all(sign_in(client, alice), campaign, version=alice.version)
    born = datetime.datetime.strptime(rows[0]["CSRQ"], "%Y%m%d").date()
    rows[0]["CSRQ"] = (born + datetime.timedelta(days=1)).strftime("%Y%m%d")

    import_rows(tmp_path, rows, "second.xlsx")

    page = html(client.get(checklist_url(campaign)))
    csrq = text(row(page, "CSRQ"))
    assert f"{born:%Y年%m月%d日} → {born + datetime.timedelta(days=1):%Y年%m月%d日}" in csrq
    assert f"身份证号码对应的出生日期为 {born.isoformat()}" in csrq
    assert answer(campaign, alice, "CSRQ").status == FieldCheck.Status.REOPENED


def test_a_flag_whose_claimed_value_arrives_is_corrected_and_the_field_reopens(
    client, tmp_path, rows, students, campaign
):
    alice = students[0]
    old_class = rows[0]["BH"]
    sign_in(client, alice)
    flag(client, campaign, "BH", "计算机2599", version=alice.version, explanation="班级已调整")
    item = Flag.objects.get()
    rows[0]["BH"] = "计算机2599"

    import_rows(tmp_path, rows, "second.xlsx")

    item.refresh_from_db()
    assert item.status == Flag.Status.CORRECTED
    event = FlagEvent.objects.filter(flag=item).last()
    assert (event.action, event.from_status, event.to_status, event.actor) == (
        FlagEvent.Action.CORRECTED_BY_IMPORT,
        Flag.Status.SUBMITTED,
        Flag.Status.CORRECTED,
        None,
    )
    assert answer(campaign, alice, "BH").status == FieldCheck.Status.REOPENED
    bh = text(row(html(client.get(checklist_url(campaign))), "BH"))
    assert f"学籍数据已更新：{old_class} → 计算机2599" in bh
    assert "学信网已更正" in bh


def test_a_flag_whose_field_changes_to_something_else_stays_open(client, tmp_path, rows, students, campaign):
    alice = students[0]
    sign_in(client, alice)
    flag(client, campaign, "MZ", "回族", version=alice.version, files=[upload("证明.png", png_bytes(), "image/png")])
    rows[0]["MZ"] = "满族" if rows[0]["MZ"] != "满族" else "壮族"

    import_rows(tmp_path, rows, "second.xlsx")

    assert Flag.objects.get().status == Flag.Status.SUBMITTED
    assert answer(campaign, alice, "MZ").status == FieldCheck.Status.FLAGGED


def test_a_closed_campaign_is_not_reopened(tmp_path, rows, students, campaign):
    alice = students[0]
    services.checklist_confirm_all(
        checklist_id=Checklist.objects.get(campaign=campaign, student=alice).pk,
        record_version=alice.version,
        by=alice.user,
    )
    Campaign.objects.filter(pk=campaign.pk).update(closes_at=timezone.now() - datetime.timedelta(minutes=1))
    services.campaign_close(campaign_id=campaign.pk)
    rows[0]["XM"] = rows[0]["XM"][0] + "新名"

    import_rows(tmp_path, rows, "second.xlsx")

    assert answer(campaign, alice, "XM").status == FieldCheck.Status.CONFIRMED
    assert state(campaign, alice) == Checklist.State.CONFIRMED


def test_a_form_opened_before_the_import_is_refused_and_nothing_applied(client, tmp_path, rows, students, campaign):
    alice = students[0]
    sign_in(client, alice)
    opened_at = version_of(alice)
    assert f'value="{opened_at}"' in html(client.get(checklist_url(campaign)))
    rows[0]["BH"] = "计算机2598"
    import_rows(tmp_path, rows, "second.xlsx")
    assert version_of(alice) == opened_at + 1
    stale = "你的学籍信息在你打开页面后已更新，请查看最新信息后重新核对。"

    assert stale in messages_of(confirm(client, campaign, "BH", version=opened_at))
    assert stale in messages_of(flag(client, campaign, "XH", "2025999999", version=opened_at))
    assert stale in messages_of(confirm_all(client, campaign, version=opened_at))

    assert not FieldCheck.objects.exists() and not Flag.objects.exists()
    assert state(campaign, alice) == Checklist.State.NOT_STARTED
    page = html(client.get(checklist_url(campaign)))
    assert f'value="{opened_at + 1}"' in page and "计算机2598" in row(page, "BH")
    confirm(client, campaign, "BH", version=opened_at + 1)
    assert answer(campaign, alice, "BH").seen_value == "计算机2598"


def test_a_student_added_by_a_later_roster_gets_a_checklist_in_the_open_campaign(client, tmp_path, rows, campaign):
    rows.append(base_rows(3)[2])

    import_rows(tmp_path, rows, "second.xlsx")

    newcomer = Student.objects.get(student_number=rows[2]["XH"])
    assert Checklist.objects.get(campaign=campaign, student=newcomer).state == Checklist.State.NOT_STARTED
    newcomer.user = UserFactory(username=newcomer.student_number)
    newcomer.save(update_fields=["user"])
    assert rows[2]["XM"] in html(sign_in(client, newcomer).get(checklist_url(campaign)))
