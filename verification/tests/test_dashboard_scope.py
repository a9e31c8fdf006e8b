"""The dashboards count each checklist where its student is now: a student who moves class or
department (a new roster, or an edit by hand) is counted in the new one, with their answers.

Checklists carry their student's department, class and cohort so that the dashboards count one
table (docs/performance.md §2); these tests pin that the copy follows the student.
"""

import datetime

import pytest
from django.utils import timezone

from students.models import ClassGroup, Cohort, Department, Student
from students.services import roster_import
from students.tests.factories import UserFactory
from students.tests.rosters import as_table, base_rows, write_xlsx
from verification import dashboards, services
from verification.models import Checklist

from .factories import CampaignFactory

pytestmark = pytest.mark.django_db


def import_rows(tmp_path, rows, name):
    header, data = as_table(rows)
    report = roster_import(path=write_xlsx(tmp_path / name, header, data), today=datetime.date(2025, 9, 15))
    assert not report.errors
    return report


@pytest.fixture
def rows():
    return base_rows(3)  # 计算机学院, classes 计科2501, 计科2502, 计科2503


@pytest.fixture
def students(tmp_path, rows):
    import_rows(tmp_path, rows, "first.xlsx")
    return [Student.objects.get(student_number=r["XH"]) for r in rows]


@pytest.fixture
def campaign(students):
    return CampaignFactory(cohorts=[Cohort.objects.get(admission_year=2025, level="本科")])


def by_class(campaign, department_name):
    rows, _total = dashboards.class_progress(
        campaign=campaign, departments=Department.objects.filter(name=department_name)
    )
    return {class_group.name: (counts.total, counts.confirmed, counts.reopened) for class_group, counts in rows}


def by_department(campaign):
    rows, _cohorts, _total = dashboards.school_progress(campaign=campaign)
    return {department.name: counts.total for department, counts in rows}


def test_a_student_who_moves_class_in_a_new_roster_is_counted_in_the_new_class(tmp_path, rows, students, campaign):
    mover = students[0]
    mover.user = UserFactory(username=mover.student_number)
    mover.save(update_fields=["user"])
    services.checklist_confirm_all(
        checklist_id=Checklist.objects.get(campaign=campaign, student=mover).pk,
        record_version=mover.version,
        by=mover.user,
    )
    assert by_class(campaign, "计算机学院") == {"计科2501": (1, 1, 0), "计科2502": (1, 0, 0), "计科2503": (1, 0, 0)}

    rows[0]["BH"] = "计科2502"
    import_rows(tmp_path, rows, "second.xlsx")

    # Their check goes with them (reopened: 班号 is a checked value that changed); the old class is gone.
    assert by_class(campaign, "计算机学院") == {"计科2502": (2, 0, 1), "计科2503": (1, 0, 0)}


def test_a_student_who_moves_department_in_a_new_roster_is_counted_there(tmp_path, rows, students, campaign):
    rows[2].update(XSH="外国语学院", BH="英语2501")
    import_rows(tmp_path, rows, "second.xlsx")

    assert by_department(campaign) == {"外国语学院": 1, "计算机学院": 2}
    assert by_class(campaign, "外国语学院") == {"英语2501": (1, 0, 0)}
    checklist = Checklist.objects.select_related("student").get(campaign=campaign, student=students[2])
    assert (checklist.department_id, checklist.class_group_id) == (
        checklist.student.department_id,
        checklist.student.class_group_id,
    )


def test_a_student_moved_by_hand_is_counted_in_the_new_class(students, campaign):
    mover = students[0]
    mover.class_group = ClassGroup.objects.get(name="计科2503")
    mover.save()

    assert by_class(campaign, "计算机学院") == {"计科2502": (1, 0, 0), "计科2503": (2, 0, 0)}


def test_a_student_of_a_class_gets_a_checklist_in_that_class(students, campaign):
    """Checklists made for a campaign (bulk) and one at a time (复学, 转入) both carry the class."""
    assert sum(total for total, _confirmed, _reopened in by_class(campaign, "计算机学院").values()) == 3
    checklist = Checklist.objects.get(campaign=campaign, student=students[1])
    checklist.delete()
    Checklist.objects.create(campaign=campaign, student=students[1])
    assert by_class(campaign, "计算机学院")["计科2502"] == (1, 0, 0)


def test_the_school_chart_counts_each_first_finish_on_its_local_day(students, campaign):
    """The school page takes the chart from its one aggregate (by arithmetic on PostgreSQL): the same days."""
    local = timezone.get_current_timezone()
    finishes = [
        datetime.datetime(2025, 9, 20, 0, 5, tzinfo=local),  # just after local midnight: that local day
        datetime.datetime(2025, 9, 20, 23, 55, tzinfo=local),
        datetime.datetime(2025, 9, 22, 7, 0, tzinfo=local),
    ]
    states = [Checklist.State.CONFIRMED, Checklist.State.FLAGGED, Checklist.State.IN_PROGRESS]  # the last reopened
    for student, finished_at, state in zip(students, finishes, states, strict=True):
        Checklist.objects.filter(campaign=campaign, student=student).update(finished_at=finished_at, state=state)

    _rows, _cohorts, total, per_day = dashboards.school_overview(campaign=campaign)

    assert per_day == {datetime.date(2025, 9, 20): 2, datetime.date(2025, 9, 22): 1}
    assert dashboards.daily_progress(campaign=campaign, today=datetime.date(2025, 9, 23)) == dashboards.daily_progress(
        campaign=campaign, total=total.total, per_day=per_day, today=datetime.date(2025, 9, 23)
    )
