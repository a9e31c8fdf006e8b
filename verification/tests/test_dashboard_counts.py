"""The counts the dashboards read (ChecklistCount, FinishCount) stay equal to counting the checklists.

Database triggers keep them in the same transaction as every change of a checklist
(migration verification.0012, docs/performance.md §6).  These tests take a campaign through
every kind of change the portal makes (answers, proxy answers, flags returned, exclusions,
inclusions, a roster that moves a student and changes a checked value, the close that marks
students overdue, a student deleted, the campaign deleted) and compare the stored counts with
a fresh GROUP BY over the checklists after each step.  They run on SQLite and on PostgreSQL
(``DATABASE_URL``), whose triggers differ.
"""

import datetime
from collections import Counter

import pytest
from django.core.management import call_command
from django.utils import timezone

from students.models import Cohort, Student
from students.services import roster_import
from students.tests.factories import CohortFactory, SecretaryFactory, StudentFactory, UserFactory
from students.tests.rosters import as_table, base_rows, write_xlsx
from verification import dashboards, services
from verification.models import Campaign, Checklist, ChecklistCount, FinishCount, Flag

from .factories import CampaignFactory

pytestmark = pytest.mark.django_db


def quarter(moment: datetime.datetime) -> datetime.datetime:
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)


def counted(campaign_id: int) -> tuple[dict, dict]:
    """What the checklists say: {(department, class, cohort, state, finished): n}, {quarter hour: first finishes}."""
    scopes, quarters = Counter(), Counter()
    for department, class_group, cohort, state, finished_at in Checklist.objects.filter(
        campaign_id=campaign_id
    ).values_list("department_id", "class_group_id", "cohort_id", "state", "finished_at"):
        scopes[(department or 0, class_group or 0, cohort or 0, state, finished_at is not None)] += 1
        if finished_at is not None and state != Checklist.State.EXCLUDED:
            quarters[quarter(finished_at)] += 1
    return dict(scopes), dict(quarters)


def stored(campaign_id: int) -> tuple[dict, dict]:
    scopes = {
        (department, class_group, cohort, state, finished): n
        for department, class_group, cohort, state, finished, n in ChecklistCount.objects.filter(
            campaign_id=campaign_id
        ).values_list("department_id", "class_group_id", "cohort_id", "state", "finished", "n")
        if n
    }
    quarters = {q.astimezone(datetime.timezone.utc): n for q, n in FinishCount.objects.filter(
        campaign_id=campaign_id
    ).values_list("quarter", "n") if n}  # fmt: skip
    return scopes, quarters


def assert_exact(campaign):
    assert stored(campaign.pk) == counted(campaign.pk)


def import_rows(tmp_path, rows, name):
    header, data = as_table(rows)
    report = roster_import(path=write_xlsx(tmp_path / name, header, data), today=datetime.date(2025, 9, 15))
    assert not report.errors


@pytest.fixture
def school(tmp_path):
    rows = base_rows(6)
    import_rows(tmp_path, rows, "first.xlsx")
    students = [Student.objects.get(student_number=r["XH"]) for r in rows]
    for student in students:
        student.user = UserFactory(username=student.student_number)
        student.save(update_fields=["user"])
    campaign = CampaignFactory(cohorts=[Cohort.objects.get(admission_year=2025, level="本科")])
    secretary = SecretaryFactory(departments=[students[0].department])
    return rows, students, campaign, secretary


def checklist_of(campaign, student) -> Checklist:
    return Checklist.objects.get(campaign=campaign, student=student)


def test_the_stored_counts_follow_every_change_of_a_campaign(tmp_path, school):
    rows, students, campaign, secretary = school
    assert len(counted(campaign.pk)[0]) > 1
    assert_exact(campaign)

    # A student confirms everything; a secretary confirms for another (proxy).
    services.checklist_confirm_all(
        checklist_id=checklist_of(campaign, students[0]).pk, record_version=students[0].version, by=students[0].user
    )
    services.checklist_confirm_all(
        checklist_id=checklist_of(campaign, students[1]).pk,
        record_version=students[1].version,
        by=secretary,
        proxy=True,
    )
    assert_exact(campaign)

    # A flag, returned to its student: finished once, reopened.
    services.checklist_confirm_all(
        checklist_id=checklist_of(campaign, students[2]).pk, record_version=students[2].version, by=students[2].user
    )
    flag = services.field_flag(
        checklist_id=checklist_of(campaign, students[2]).pk,
        field_code="ZYMC",
        claimed_value="软件工程",
        explanation="专业名称有误",
        record_version=students[2].version,
        by=students[2].user,
    )
    assert checklist_of(campaign, students[2]).state == Checklist.State.FLAGGED
    assert_exact(campaign)
    services.flag_transition(flag_id=flag.pk, to=Flag.Status.RETURNED, by=secretary, note="无需修改")
    assert checklist_of(campaign, students[2]).state == Checklist.State.RETURNED
    assert_exact(campaign)

    # Excluded (a finished one: its first finish leaves the chart), restored, excluded again.
    finished = checklist_of(campaign, students[1])
    services.checklist_exclude(checklist_id=finished.pk, reason=Checklist.Exclusion.SUSPENDED, by=secretary)
    assert_exact(campaign)
    services.checklist_restore(checklist_id=finished.pk, by=secretary)
    assert_exact(campaign)
    services.checklist_exclude(
        checklist_id=checklist_of(campaign, students[3]).pk,
        reason=Checklist.Exclusion.OTHER,
        note="参军入伍",
        by=secretary,
    )
    assert_exact(campaign)

    # A student of another cohort taken in (复学).
    returning = StudentFactory(department=students[0].department, cohort=CohortFactory(admission_year=2023))
    services.checklist_include(campaign=campaign, student=returning, reason=Checklist.Inclusion.RESUMED, by=secretary)
    assert_exact(campaign)

    # A new roster moves a student who had confirmed to another class: counted there, reopened (班号 is checked).
    rows[0]["BH"] = next(row["BH"] for row in rows if row["BH"] != rows[0]["BH"])
    import_rows(tmp_path, rows, "second.xlsx")
    assert checklist_of(campaign, students[0]).state != Checklist.State.CONFIRMED
    assert_exact(campaign)

    # The close: who has not finished becomes overdue.
    marked = services.campaign_close(campaign_id=campaign.pk, now=campaign.closes_at + datetime.timedelta(minutes=1))
    assert marked > 0
    assert_exact(campaign)

    # A student deleted (their checklist with them), then the campaign: nothing of it is left.
    students[5].delete()
    assert_exact(campaign)
    campaign_id = campaign.pk
    Campaign.objects.filter(pk=campaign_id).delete()
    assert not ChecklistCount.objects.filter(campaign_id=campaign_id).exists()
    assert not FinishCount.objects.filter(campaign_id=campaign_id).exists()


def test_the_school_and_department_dashboards_read_the_stored_counts(school):
    rows, students, campaign, secretary = school
    services.checklist_confirm_all(
        checklist_id=checklist_of(campaign, students[0]).pk, record_version=students[0].version, by=students[0].user
    )
    # The counts, not the checklists, are what the pages show: a count changed by hand shows.
    ChecklistCount.objects.filter(campaign=campaign, state=Checklist.State.CONFIRMED).update(n=5)
    FinishCount.objects.filter(campaign=campaign).update(n=5)

    _rows, _cohorts, total, per_day = dashboards.school_overview(campaign=campaign)
    assert (total.confirmed, sum(per_day.values())) == (5, 5)
    department_rows, department_total = dashboards.class_progress(
        campaign=campaign, departments=secretary.departments.all()
    )
    assert department_total.confirmed == 5

    # Rebuilt from the checklists: right again.
    call_command("rebuild_dashboard_counts", "--campaign", str(campaign.pk), stdout=open("/dev/null", "w"))
    assert_exact(campaign)
    _rows, _cohorts, total, per_day = dashboards.school_overview(campaign=campaign)
    assert (total.confirmed, per_day) == (1, {timezone.localdate(): 1})


def test_a_rebuild_of_every_campaign_gives_the_counts_the_triggers_kept(school):
    _rows, students, campaign, _secretary = school
    other = CampaignFactory(cohorts=[Cohort.objects.get(admission_year=2025, level="本科")])
    services.checklist_confirm_all(
        checklist_id=checklist_of(other, students[0]).pk, record_version=students[0].version, by=students[0].user
    )
    kept = [stored(campaign.pk), stored(other.pk)]
    ChecklistCount.objects.all().delete()
    FinishCount.objects.all().delete()

    dashboards.rebuild_counts()

    assert [stored(campaign.pk), stored(other.pk)] == kept
    assert_exact(campaign)
    assert_exact(other)
