"""The people of a campaign beyond secretaries and the registrar (docs/roles.md): counsellors scoped to
their classes, the configurable review chain, class monitors and the admissions office."""

import pytest
from django.urls import reverse

from students.errors import NotFound
from students.models import User
from students.permissions import has_capability
from students.tests.factories import ClassGroupFactory, UserFactory
from verification import services
from verification.models import Flag, FlagEvent, ReviewLevel

from .factories import student_with_account

pytestmark = pytest.mark.django_db

S = Flag.Status
CHAIN = ["counsellor", "department", "registrar"]


@pytest.fixture
def classes(department, other_department):
    return {
        "mine": ClassGroupFactory(department=department, name="计算机2501"),
        "next door": ClassGroupFactory(department=department, name="计算机2502"),
        "abroad": ClassGroupFactory(department=other_department, name="英语2501"),
    }


@pytest.fixture
def counsellor(classes):
    """A counsellor of two classes in two departments; the class next door is someone else's."""
    user = UserFactory(role=User.Role.COUNSELLOR, username="counsellor1", first_name="陈辅导员")
    user.classes.set([classes["mine"], classes["abroad"]])
    return user


@pytest.fixture
def students(me, cohort, classes):
    me.class_group = classes["mine"]
    me.class_name = classes["mine"].name
    me.save()
    return {
        "me": me,
        "classmate": student_with_account(
            department=classes["mine"].department, class_group=classes["mine"], cohort=cohort, name="赵同学"
        ),
        "next door": student_with_account(
            department=classes["next door"].department, class_group=classes["next door"], cohort=cohort, name="钱邻班"
        ),
        "abroad": student_with_account(
            department=classes["abroad"].department, class_group=classes["abroad"], cohort=cohort, name="孙外语"
        ),
    }


def flag_of(student, campaign, field_code="MZ", value="回族"):
    return services.field_flag(
        checklist_id=campaign.checklists.get(student=student).pk,
        field_code=field_code,
        claimed_value=value,
        explanation="户口簿上的值",
        record_version=student.version,
        by=student.user,
    )


# ---------------------------------------------------------------------------
# Counsellors
# ---------------------------------------------------------------------------


def test_a_counsellor_sees_a_dashboard_of_their_classes_in_both_departments_and_nothing_next_door(
    client, counsellor, students, campaign
):
    client.force_login(counsellor)
    page = client.get(reverse("workspace:dashboard"), {"campaign": campaign.pk}).content.decode()
    assert "我的班级" in page
    assert "计算机2501" in page and "英语2501" in page
    assert "计算机2502" not in page
    # Department-wide actions are the secretary's: no sign-off form.
    assert "确认提交" not in page


def test_a_counsellor_opens_their_classes_and_students_and_gets_404_outside_them(
    client, counsellor, students, classes, campaign
):
    client.force_login(counsellor)
    page = client.get(reverse("workspace:class_detail", args=[classes["mine"].pk]), {"campaign": campaign.pk})
    assert page.status_code == 200
    assert "赵同学" in page.content.decode()
    assert client.get(reverse("workspace:class_detail", args=[classes["next door"].pk])).status_code == 404
    assert client.get(reverse("workspace:student_record", args=[students["abroad"].pk])).status_code == 200
    assert client.get(reverse("workspace:student_record", args=[students["next door"].pk])).status_code == 404
    listing = client.get(reverse("students:student_list")).content.decode()
    assert "赵同学" in listing and "孙外语" in listing and "钱邻班" not in listing


def test_a_counsellor_records_a_paper_form_for_a_student_of_their_class_only(counsellor, students, campaign):
    mine = campaign.checklists.get(student=students["classmate"])
    services.checklist_confirm_all(
        checklist_id=mine.pk, record_version=students["classmate"].version, by=counsellor, proxy=True
    )
    mine.refresh_from_db()
    assert mine.is_finished
    next_door = campaign.checklists.get(student=students["next door"])
    with pytest.raises(NotFound):
        services.checklist_confirm_all(
            checklist_id=next_door.pk, record_version=students["next door"].version, by=counsellor, proxy=True
        )


def test_a_counsellor_reminds_their_class_but_not_the_class_next_door(client, counsellor, students, classes, campaign):
    client.force_login(counsellor)
    data = {"campaign": campaign.pk, "request_key": "people-request-key-0123456789", "scope": "all"}
    response = client.post(reverse("notices:remind_now", args=[classes["mine"].pk]), data)
    assert response.status_code == 302
    data["request_key"] = "people-request-key-9876543210"
    assert client.post(reverse("notices:remind_now", args=[classes["next door"].pk]), data).status_code == 404


def test_without_the_counsellor_step_a_counsellor_has_no_review_queue(client, counsellor, students, campaign):
    flag = flag_of(students["me"], campaign)
    assert flag.review_level == ReviewLevel.DEPARTMENT
    client.force_login(counsellor)
    assert client.get(reverse("workspace:review_queue")).status_code == 404
    assert not has_capability(counsellor, "flag.review", flag)


# ---------------------------------------------------------------------------
# The review chain: counsellor → department → registrar
# ---------------------------------------------------------------------------


def test_each_step_of_the_chain_forwards_and_the_history_shows_who_did_what_at_which_level(
    client, settings, counsellor, secretary, registrar, students, campaign
):
    settings.REVIEW_CHAIN = CHAIN
    flag = flag_of(students["me"], campaign)
    assert (flag.status, flag.review_level) == (S.SUBMITTED, ReviewLevel.COUNSELLOR)
    client.force_login(students["me"].user)
    assert "已提交，待辅导员审核" in client.get(reverse("verification:flag_detail", args=[flag.pk])).content.decode()

    client.force_login(counsellor)
    queue = client.get(reverse("workspace:review_queue")).content.decode()
    assert "王小明" in queue and "审核通过，转院系审核" in queue
    services.flag_note(flag_id=flag.pk, by=counsellor, note="已与学生核实户口簿")
    services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=counsellor)
    flag.refresh_from_db()
    assert (flag.status, flag.review_level) == (S.SUBMITTED, ReviewLevel.DEPARTMENT)
    # Passed on: the counsellor's queue no longer holds it, and the counsellor cannot act for the department.
    assert "王小明" not in client.get(reverse("workspace:review_queue")).content.decode()
    with pytest.raises(services.VerificationError):
        services.flag_transition(flag_id=flag.pk, to=S.RETURNED, by=counsellor, note="再看看")

    services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=secretary)
    services.flag_transition(flag_id=flag.pk, to=S.ACCEPTED, by=registrar)
    flag.refresh_from_db()
    assert (flag.status, flag.review_level) == (S.ACCEPTED, ReviewLevel.REGISTRAR)
    history = [(e.level, e.action, e.actor) for e in flag.events.all()]
    assert history == [
        ("", FlagEvent.Action.SUBMITTED, students["me"].user),
        ("counsellor", FlagEvent.Action.NOTE, counsellor),
        ("counsellor", FlagEvent.Action.PASSED_ON, counsellor),
        ("department", FlagEvent.Action.FORWARDED, secretary),
        ("registrar", FlagEvent.Action.ACCEPTED, registrar),
    ]
    # The registrar's card shows that history, each step with its level.
    client.force_login(registrar)
    card = client.get(reverse("workspace:correction_queue")).content.decode()
    assert "辅导员 · 备注" in card and "已与学生核实户口簿" in card
    assert "辅导员 · 审核通过，转下一环节" in card and "院系 · 院系审核通过，转学籍科" in card


def test_a_step_returns_with_a_reason_and_the_resubmitted_flag_starts_the_chain_again(
    settings, counsellor, secretary, students, campaign
):
    settings.REVIEW_CHAIN = CHAIN
    me = students["me"]
    flag = flag_of(me, campaign)
    with pytest.raises(services.VerificationError):
        services.flag_transition(flag_id=flag.pk, to=S.RETURNED, by=counsellor, note=" ")
    services.flag_transition(flag_id=flag.pk, to=S.RETURNED, by=counsellor, note="请上传户口簿本人页")
    flag.refresh_from_db()
    assert flag.status == S.RETURNED and flag.return_reason == "请上传户口簿本人页"
    services.flag_amend(
        flag_id=flag.pk, claimed_value="回族", explanation="已补传", record_version=me.version, by=me.user
    )
    flag.refresh_from_db()
    assert (flag.status, flag.review_level) == (S.SUBMITTED, ReviewLevel.COUNSELLOR)
    # The department may act for the counsellor (a counsellor on leave), never the reverse.
    services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=secretary)
    flag.refresh_from_db()
    assert flag.review_level == ReviewLevel.DEPARTMENT


def test_a_class_without_a_counsellor_starts_at_the_department(settings, counsellor, students, campaign):
    settings.REVIEW_CHAIN = CHAIN
    assert flag_of(students["next door"], campaign).review_level == ReviewLevel.DEPARTMENT
    assert flag_of(students["me"], campaign).review_level == ReviewLevel.COUNSELLOR


def test_a_counsellor_cannot_review_a_flag_outside_their_classes(settings, counsellor, students, campaign):
    settings.REVIEW_CHAIN = CHAIN
    other = UserFactory(role=User.Role.COUNSELLOR, username="counsellor2")
    other.classes.set([students["next door"].class_group])
    flag = flag_of(students["next door"], campaign)
    assert flag.review_level == ReviewLevel.COUNSELLOR
    with pytest.raises(NotFound):
        services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=counsellor)


# ---------------------------------------------------------------------------
# Class monitors
# ---------------------------------------------------------------------------


def test_a_monitor_sees_who_in_the_class_has_not_finished_and_nothing_more(client, students, classes, campaign):
    monitor = students["classmate"]
    classes["mine"].monitors.add(monitor.user)
    me = students["me"]
    services.checklist_confirm_all(
        checklist_id=campaign.checklists.get(student=me).pk, record_version=me.version, by=me.user
    )
    client.force_login(monitor.user)
    page = client.get(reverse("verification:class_progress")).content.decode()
    assert "计算机2501" in page and "已完成 1 / 2 人" in page
    assert "赵同学" in page  # the monitor has not finished yet either
    assert "王小明" not in page and me.student_number not in page and me.phone not in page
    assert "钱邻班" not in page and "孙外语" not in page
    assert "班级进度" in client.get(reverse("verification:my_checks"), follow=True).content.decode()


def test_a_student_who_is_not_a_monitor_has_no_class_progress(client, students, campaign):
    client.force_login(students["classmate"].user)
    assert client.get(reverse("verification:class_progress")).status_code == 404


# ---------------------------------------------------------------------------
# The admissions office
# ---------------------------------------------------------------------------


@pytest.fixture
def admissions(db):
    return UserFactory(role=User.Role.ADMISSIONS, username="zhaoshengban")


def test_major_flags_go_to_the_admissions_office_when_the_school_routes_them_there(
    client, settings, admissions, secretary, registrar, students, campaign
):
    settings.ADMISSIONS_REVIEW = True
    major = flag_of(students["me"], campaign, "ZYMC", "软件工程")
    ethnicity = flag_of(students["classmate"], campaign)
    for flag in (major, ethnicity):
        services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=secretary)
    major.refresh_from_db()
    ethnicity.refresh_from_db()
    assert major.review_level == ReviewLevel.ADMISSIONS
    assert ethnicity.review_level == ReviewLevel.REGISTRAR

    client.force_login(admissions)
    assert client.get(reverse("home")).url == reverse("workspace:correction_queue")
    queue = client.get(reverse("workspace:correction_queue")).content.decode()
    assert "王小明" in queue and "赵同学" not in queue
    assert "院系已审核，待招生办受理" in queue
    assert client.get(reverse("workspace:student_record", args=[students["me"].pk])).status_code == 200
    assert client.get(reverse("workspace:student_record", args=[students["classmate"].pk])).status_code == 404
    services.flag_transition(flag_id=major.pk, to=S.ACCEPTED, by=admissions)
    with pytest.raises(NotFound):
        services.flag_transition(flag_id=ethnicity.pk, to=S.ACCEPTED, by=admissions)
    major.refresh_from_db()
    assert major.events.last().level == "admissions"


def test_without_the_setting_major_flags_stay_with_the_registrar(client, admissions, secretary, students, campaign):
    major = flag_of(students["me"], campaign, "ZYMC", "软件工程")
    services.flag_transition(flag_id=major.pk, to=S.FORWARDED, by=secretary)
    major.refresh_from_db()
    assert major.review_level == ReviewLevel.REGISTRAR
    client.force_login(admissions)
    assert client.get(reverse("workspace:correction_queue")).status_code == 404
    assert client.get(reverse("workspace:student_record", args=[students["me"].pk])).status_code == 404


@pytest.mark.parametrize(
    "chain",
    [[], ["department"], ["registrar", "department"], ["counsellor", "counsellor", "registrar"], ["dean", "registrar"]],
)
def test_a_chain_that_does_not_end_with_the_registrar_in_order_is_refused(settings, chain):
    from django.core.exceptions import ImproperlyConfigured

    from verification import review_chain

    settings.REVIEW_CHAIN = chain
    with pytest.raises(ImproperlyConfigured):
        review_chain.chain()


def test_the_portal_refuses_to_start_with_a_wrong_chain(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.REVIEW_CHAIN = ["registrar", "department"]
    with pytest.raises(SystemCheckError, match="REVIEW_CHAIN must be"):
        call_command("check")
    settings.REVIEW_CHAIN = ["counsellor", "department", "registrar"]
    call_command("check")
