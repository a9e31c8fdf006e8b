"""The review chain of a flag: every move ``TRANSITIONS`` allows, made by the right person, and every move refused.

A refused move raises and changes nothing: not the flag, not its history, not
the student's checklist.  Another department's secretary does not even learn
that the flag exists.
"""

import copy
import datetime
import itertools

import pytest
from django.conf import settings
from django.db.models import Count
from django.utils import timezone, translation

from students.errors import NotFound
from students.models import Student, User
from students.tests.factories import CohortFactory, DepartmentFactory, SecretaryFactory, UserFactory
from verification import services
from verification.models import Campaign, Checklist, Flag, FlagEvent
from verification.services import STAFF_CAPABILITIES, SYSTEM, TRANSITIONS, VerificationError
from verification.tests.factories import CampaignFactory, student_with_account

pytestmark = pytest.mark.django_db

S = Flag.Status
REASON = "专业名称括号内的内容无需核对"
# How a flag reaches each status: (to, who) steps after the student submits it.
PATHS = {
    S.SUBMITTED: [],
    S.RETURNED: [(S.RETURNED, "secretary")],
    S.FORWARDED: [(S.FORWARDED, "secretary")],
    S.ACCEPTED: [(S.FORWARDED, "secretary"), (S.ACCEPTED, "registrar")],
    S.SUBMITTED_TO_CHSI: [(S.FORWARDED, "secretary"), (S.ACCEPTED, "registrar"), (S.SUBMITTED_TO_CHSI, "registrar")],
    S.CORRECTED: [(S.FORWARDED, "secretary"), (S.ACCEPTED, "registrar"), (S.CORRECTED, "registrar")],
    S.WITHDRAWN: [(S.WITHDRAWN, "student")],
    # Returned, then the departments' deadline passed without a resubmission.
    S.NOT_RESUBMITTED: [(S.RETURNED, "secretary"), (S.NOT_RESUBMITTED, "deadline")],
}


def _move_through_the_chain(status, *, me, checklist, campaign, staff) -> Flag:
    """The student flags a field and the flag is moved along ``PATHS`` to ``status``, through the services."""
    services.checklist_confirm_all(checklist_id=checklist.pk, record_version=me.version, by=me.user)
    flag = services.field_flag(
        checklist_id=checklist.pk,
        field_code="ZYMC",
        claimed_value="软件工程",
        explanation="录取通知书上是软件工程",
        record_version=me.version,
        by=me.user,
    )
    for to, who in PATHS[status]:
        if to == S.WITHDRAWN:
            services.flag_withdraw(flag_id=flag.pk, by=me.user)
        elif who == "deadline":
            now = timezone.now()
            Campaign.objects.filter(pk=campaign.pk).update(
                closes_at=now - datetime.timedelta(hours=1),
                departments_close_at=now - datetime.timedelta(minutes=1),
                closed_at=now - datetime.timedelta(hours=1),
            )
            services.flags_close_not_resubmitted(campaign_id=campaign.pk)
        else:
            services.flag_transition(flag_id=flag.pk, to=to, by=staff[who], note=REASON)
    flag.refresh_from_db()
    assert flag.status == status
    return flag


@pytest.fixture(scope="module")
def shared_cast(module_rows):
    """The people, the open campaign and a flag at every status, built once for the module.

    Building them for each of the module's 145 tests was nearly all of its time.  Each status has its own
    student (a checklist's state follows all its flags); the flag closed at the departments' deadline has
    its own campaign, as that deadline closes every returned flag of a campaign.  Each test gets deep
    copies and its own database changes are rolled back.
    """
    with module_rows(), translation.override(settings.LANGUAGE_CODE):
        department = DepartmentFactory(name="计算机学院")
        other_department = DepartmentFactory(name="外国语学院")
        registrar = UserFactory(role="registrar", username="registrar1")
        staff = {
            "secretary": SecretaryFactory(departments=[department]),
            "other_secretary": SecretaryFactory(departments=[other_department]),
            "registrar": registrar,
            "superuser": UserFactory(username="root", role=User.Role.ADMIN, is_staff=True, is_superuser=True),
        }
        cohort = CohortFactory(admission_year=2025, level="本科")
        deadline_cohort = CohortFactory(admission_year=2024, level="本科")
        students = {
            status: student_with_account(
                department=department, cohort=deadline_cohort if status == S.NOT_RESUBMITTED else cohort
            )
            for status in PATHS
        }
        campaign = CampaignFactory(name="2025级新生学籍核对", cohorts=[cohort], by=registrar)
        deadline_campaign = CampaignFactory(name="2024级学籍核对", cohorts=[deadline_cohort], by=registrar)
        flags = {}
        for status, me in students.items():
            in_campaign = deadline_campaign if status == S.NOT_RESUBMITTED else campaign
            checklist = in_campaign.checklists.get(student=me)
            flag = _move_through_the_chain(status, me=me, checklist=checklist, campaign=in_campaign, staff=staff)
            flags[status] = flag
        owners = {
            flag.pk: (
                Student.objects.select_related("user").get(pk=flag.checklist.student_id),
                Checklist.objects.get(pk=flag.checklist_id),
            )
            for flag in flags.values()
        }
        return {
            "department": department,
            "other_department": other_department,
            "flags": {status: Flag.objects.get(pk=flag.pk) for status, flag in flags.items()},
            "owners": owners,
            "cast": staff,
        }


@pytest.fixture
def department(db, shared_cast):
    return copy.deepcopy(shared_cast["department"])


@pytest.fixture
def other_department(db, shared_cast):
    return copy.deepcopy(shared_cast["other_department"])


@pytest.fixture
def cast(db, shared_cast):
    """The staff: the student is each flag's owner (``owner``)."""
    return copy.deepcopy(shared_cast["cast"])


@pytest.fixture
def flag_at(db, shared_cast):
    """A flag of a student's, moved through the chain to ``status`` when the module's cast was built."""

    def at(status) -> Flag:
        flag = copy.deepcopy(shared_cast["flags"][status])
        assert flag.status == status
        return flag

    return at


@pytest.fixture
def owner(db, shared_cast):
    """The student whose flag it is, and their checklist."""

    def of(flag) -> tuple[Student, Checklist]:
        return copy.deepcopy(shared_cast["owners"][flag.pk])

    return of


def snapshot(flag) -> tuple:
    """Everything a refused move must leave as it was (read in one query: it runs twice in most tests)."""
    flag = Flag.objects.select_related("checklist").annotate(history=Count("events")).get(pk=flag.pk)
    return (
        flag.status,
        flag.return_reason,
        flag.updated_at,
        flag.history,
        flag.checklist.state,
        flag.checklist.finished_at,
    )


def last_event(flag) -> FlagEvent:
    return FlagEvent.objects.filter(flag=flag).last()


# ---------------------------------------------------------------------------
# Every allowed move, by whoever may make it
# ---------------------------------------------------------------------------

# Who in the cast holds each review capability (students/permissions.py).
# Registrar staff may also act as a department.
HOLDERS = {"flag.review": ["secretary", "registrar", "superuser"], "flag.correct": ["registrar", "superuser"]}
STUDENT_ONLY = {"checklist.answer_own"}


def holders(capabilities) -> list[str]:
    return sorted({actor for capability in capabilities & STAFF_CAPABILITIES for actor in HOLDERS[capability]})


STAFF_MOVES = [
    pytest.param(source, target, actor, id=f"{source}→{target} by {actor}")
    for (source, target), capabilities in TRANSITIONS.items()
    for actor in holders(capabilities)
]


@pytest.mark.parametrize(("source", "target", "actor"), STAFF_MOVES)
def test_every_staff_move_in_the_chain_works(flag_at, owner, cast, source, target, actor):
    flag = flag_at(source)
    _me, checklist = owner(flag)
    events = FlagEvent.objects.filter(flag=flag).count()

    services.flag_transition(flag_id=flag.pk, to=target, by=cast[actor], note=f"  {REASON}  ")

    flag.refresh_from_db()
    assert flag.status == target
    assert FlagEvent.objects.filter(flag=flag).count() == events + 1
    event = last_event(flag)
    assert (event.action, event.from_status, event.to_status, event.actor, event.note) == (
        FlagEvent.Action(target),
        source,
        target,
        cast[actor],
        REASON,
    )
    checklist.refresh_from_db()
    if target == S.RETURNED:
        # The student is asked to change the flag: the check is not finished any more, but its
        # first finish is kept (the completion history never drops; counted as "reopened").
        assert flag.return_reason == REASON
        assert checklist.state == Checklist.State.RETURNED
        assert checklist.finished_at and checklist.reopened_after_finish
    else:
        assert checklist.state == Checklist.State.FLAGGED and checklist.finished_at


def test_the_student_withdraws_a_submitted_flag(flag_at, owner):
    flag = flag_at(S.SUBMITTED)
    me, checklist = owner(flag)
    services.flag_withdraw(flag_id=flag.pk, by=me.user)
    flag.refresh_from_db()
    assert flag.status == S.WITHDRAWN
    assert (last_event(flag).from_status, last_event(flag).actor) == (S.SUBMITTED, me.user)
    # The field is unanswered again: the check is back in progress.
    assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.IN_PROGRESS


def test_the_student_withdraws_a_returned_flag(flag_at, owner):
    flag = flag_at(S.RETURNED)
    me, checklist = owner(flag)
    services.flag_withdraw(flag_id=flag.pk, by=me.user)
    flag.refresh_from_db()
    assert flag.status == S.WITHDRAWN and last_event(flag).from_status == S.RETURNED
    assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.IN_PROGRESS


def test_the_student_resubmits_a_returned_flag(flag_at, owner):
    flag = flag_at(S.RETURNED)
    me, checklist = owner(flag)

    services.flag_amend(flag_id=flag.pk, claimed_value="网络工程", record_version=me.version, by=me.user)

    flag.refresh_from_db()
    assert (flag.status, flag.claimed_value) == (S.SUBMITTED, "网络工程")
    event = last_event(flag)
    assert (event.action, event.from_status, event.to_status) == (
        FlagEvent.Action.RESUBMITTED,
        S.RETURNED,
        S.SUBMITTED,
    )
    assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.FLAGGED


def test_the_chain_test_covers_every_transition():
    student_moves = {(S.SUBMITTED, S.WITHDRAWN), (S.RETURNED, S.WITHDRAWN), (S.RETURNED, S.SUBMITTED)}
    staff_moves = {(p.values[0], p.values[1]) for p in STAFF_MOVES}
    # The roster import brings the corrected value: only the system closes these.
    system_moves = {(source, S.CORRECTED) for source in (S.SUBMITTED, S.RETURNED, S.FORWARDED)}
    # The departments' deadline closes a returned flag; extending it returns the flag again.
    system_moves |= {(S.RETURNED, S.NOT_RESUBMITTED), (S.NOT_RESUBMITTED, S.RETURNED)}
    assert staff_moves | student_moves | system_moves == set(TRANSITIONS)
    assert {frozenset(TRANSITIONS[move]) for move in student_moves} == {frozenset(STUDENT_ONLY)}
    assert {frozenset(TRANSITIONS[move]) for move in system_moves} == {frozenset({SYSTEM})}
    # Every capability the map names is one students/permissions.py defines.
    from students.permissions import CAPABILITIES

    assert set().union(*TRANSITIONS.values()) - {SYSTEM} <= set(CAPABILITIES)


def test_the_system_may_correct_any_open_flag_close_a_returned_one_and_nothing_else():
    deadline_moves = {(S.RETURNED, S.NOT_RESUBMITTED), (S.NOT_RESUBMITTED, S.RETURNED)}
    for source, target in itertools.product(S.values, S.values):
        allowed = services.may_move(SYSTEM, source, target)
        expected = (target == S.CORRECTED and source in Flag.OPEN) or (source, target) in deadline_moves
        assert allowed == expected, (source, target)


# ---------------------------------------------------------------------------
# Every refused move
# ---------------------------------------------------------------------------

# Moves no staff capability allows: not in the map at all, or the system's (an import's) only.
NOT_IN_CHAIN = [
    pytest.param(source, target, id=f"{source}→{target}")
    for source, target in itertools.product(S.values, S.values)
    if not TRANSITIONS.get((source, target), set()) - {SYSTEM}
]


@pytest.mark.parametrize(("source", "target"), NOT_IN_CHAIN)
def test_a_move_outside_the_chain_is_refused_even_for_registrar_staff(flag_at, cast, source, target):
    flag = flag_at(source)
    before = snapshot(flag)

    with pytest.raises(VerificationError, match="不能改为"):
        services.flag_transition(flag_id=flag.pk, to=target, by=cast["registrar"], note=REASON)

    assert snapshot(flag) == before


@pytest.mark.parametrize("source", [S.WITHDRAWN, S.CORRECTED])
@pytest.mark.parametrize("actor", ["secretary", "registrar", "superuser"])
def test_nobody_moves_a_withdrawn_or_corrected_flag(flag_at, cast, source, actor):
    flag = flag_at(source)
    before = snapshot(flag)
    for target in S.values:
        with pytest.raises(VerificationError):
            services.flag_transition(flag_id=flag.pk, to=target, by=cast[actor], note=REASON)
    assert snapshot(flag) == before


REGISTRAR_MOVES = [
    pytest.param(source, target, id=f"{source}→{target}")
    for (source, target), capabilities in TRANSITIONS.items()
    if "flag.correct" in capabilities
]


@pytest.mark.parametrize(("source", "target"), REGISTRAR_MOVES)
def test_a_secretary_cannot_make_the_registrars_moves(flag_at, cast, source, target):
    flag = flag_at(source)
    before = snapshot(flag)

    with pytest.raises(VerificationError):
        services.flag_transition(flag_id=flag.pk, to=target, by=cast["secretary"], note=REASON)

    assert snapshot(flag) == before


STUDENT_MOVES = [
    pytest.param(source, target, actor, id=f"{source}→{target} by {actor}")
    for (source, target), capabilities in TRANSITIONS.items()
    if capabilities == STUDENT_ONLY
    for actor in ("secretary", "registrar")
]


@pytest.mark.parametrize(("source", "target", "actor"), STUDENT_MOVES)
def test_staff_cannot_withdraw_or_resubmit_for_the_student(flag_at, cast, source, target, actor):
    flag = flag_at(source)
    before = snapshot(flag)

    with pytest.raises(VerificationError):
        services.flag_transition(flag_id=flag.pk, to=target, by=cast[actor], note=REASON)

    assert snapshot(flag) == before


ALL_MOVES = [pytest.param(source, target, id=f"{source}→{target}") for source, target in TRANSITIONS]


@pytest.mark.parametrize(("source", "target"), ALL_MOVES)
def test_a_student_cannot_review_their_own_flag(flag_at, owner, source, target):
    flag = flag_at(source)
    me, _checklist = owner(flag)
    before = snapshot(flag)

    # A student holds no review capability: for them the review service finds nothing.
    with pytest.raises(NotFound):
        services.flag_transition(flag_id=flag.pk, to=target, by=me.user, note=REASON)

    assert snapshot(flag) == before


@pytest.mark.parametrize(("source", "target"), ALL_MOVES)
def test_another_departments_secretary_cannot_act_and_learns_nothing(flag_at, cast, source, target):
    flag = flag_at(source)
    before = snapshot(flag)

    # The same answer as for a flag that does not exist.
    with pytest.raises(NotFound):
        services.flag_transition(flag_id=flag.pk, to=target, by=cast["other_secretary"], note=REASON)
    with pytest.raises(NotFound):
        services.flag_transition(flag_id=flag.pk + 1000, to=target, by=cast["secretary"], note=REASON)

    assert snapshot(flag) == before


def test_a_secretary_who_left_cannot_act(flag_at, cast):
    flag = flag_at(S.SUBMITTED)
    before = snapshot(flag)
    User.objects.filter(pk=cast["secretary"].pk).update(is_active=False)
    gone = User.objects.get(pk=cast["secretary"].pk)

    with pytest.raises(NotFound):
        services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=gone)

    assert snapshot(flag) == before


def test_a_secretary_of_two_departments_acts_on_both(flag_at, department, other_department):
    flag = flag_at(S.SUBMITTED)
    services.flag_transition(
        flag_id=flag.pk, to=S.FORWARDED, by=SecretaryFactory(departments=[other_department, department])
    )
    assert Flag.objects.get(pk=flag.pk).status == S.FORWARDED


@pytest.mark.parametrize(
    ("source", "actor"),
    [(S.SUBMITTED, "secretary"), (S.FORWARDED, "registrar"), (S.ACCEPTED, "registrar")],
)
@pytest.mark.parametrize("note", ["", "   "])
def test_a_return_without_a_reason_is_refused(flag_at, cast, source, actor, note):
    flag = flag_at(source)
    before = snapshot(flag)

    with pytest.raises(VerificationError, match="退回时请填写原因"):
        services.flag_transition(flag_id=flag.pk, to=S.RETURNED, by=cast[actor], note=note)

    assert snapshot(flag) == before


def test_the_refusal_names_the_flags_state_and_the_move(flag_at, cast):
    flag = flag_at(S.SUBMITTED)
    with pytest.raises(VerificationError) as refused:
        services.flag_transition(flag_id=flag.pk, to=S.CORRECTED, by=cast["registrar"])
    assert str(refused.value) == "报错当前为“已提交，待院系审核”，不能改为“学信网已更正”"


@pytest.mark.parametrize("source", [S.FORWARDED, S.ACCEPTED, S.SUBMITTED_TO_CHSI, S.CORRECTED, S.WITHDRAWN])
def test_once_past_the_department_the_student_can_no_longer_withdraw(flag_at, owner, source):
    flag = flag_at(source)
    me, _checklist = owner(flag)
    before = snapshot(flag)

    with pytest.raises(VerificationError):
        services.flag_withdraw(flag_id=flag.pk, by=me.user)

    assert snapshot(flag) == before


@pytest.mark.parametrize("source", [S.FORWARDED, S.ACCEPTED, S.SUBMITTED_TO_CHSI])
def test_once_forwarded_the_student_can_neither_change_nor_take_back_the_flag(flag_at, owner, source):
    flag = flag_at(source)
    me, checklist = owner(flag)
    before = snapshot(flag)

    with pytest.raises(VerificationError, match="已转学籍科处理"):
        services.field_flag(
            checklist_id=checklist.pk,
            field_code="ZYMC",
            claimed_value="网络工程",
            record_version=me.version,
            by=me.user,
        )
    with pytest.raises(VerificationError, match="已转学籍科处理"):
        services.field_confirm(checklist_id=checklist.pk, field_code="ZYMC", record_version=me.version, by=me.user)

    assert snapshot(flag) == before
    assert Flag.objects.get(pk=flag.pk).claimed_value == "软件工程"


# ---------------------------------------------------------------------------
# Every writing service checks scope itself (a task or a command may call it)
# ---------------------------------------------------------------------------


def test_a_note_on_a_flag_out_of_scope_is_not_found_like_a_missing_one(flag_at, owner, cast):
    flag = flag_at(S.SUBMITTED)
    me, _checklist = owner(flag)
    before = snapshot(flag)

    for by, flag_id in ((cast["other_secretary"], flag.pk), (cast["secretary"], flag.pk + 1000)):
        with pytest.raises(NotFound):
            services.flag_note(flag_id=flag_id, by=by, note="看看")
    # Not even a student's own flag: notes are staff's.
    with pytest.raises(NotFound):
        services.flag_note(flag_id=flag.pk, by=me.user, note="看看")

    assert snapshot(flag) == before
    services.flag_note(flag_id=flag.pk, by=cast["secretary"], note="已电话联系")
    assert last_event(flag).action == FlagEvent.Action.NOTE


def test_the_students_services_refuse_anyone_else(flag_at, owner, cast, other_student):
    from students.tests.factories import UserFactory as Users

    flag = flag_at(S.RETURNED)
    me, checklist = owner(flag)
    before = snapshot(flag)
    intruder = Users(username=other_student.student_number)
    other_student.user = intruder
    other_student.save()

    for by in (intruder, cast["other_secretary"], cast["secretary"]):
        with pytest.raises(NotFound):
            services.flag_withdraw(flag_id=flag.pk, by=by)
        with pytest.raises(NotFound):
            services.flag_amend(flag_id=flag.pk, claimed_value="网络工程", record_version=me.version, by=by)
        with pytest.raises(NotFound):
            services.field_confirm(checklist_id=checklist.pk, field_code="ZYMC", record_version=me.version, by=by)
    assert snapshot(flag) == before

    # Staff in scope may record a paper form (proxy); staff of another department may not.
    with pytest.raises(NotFound):
        services.field_confirm(
            checklist_id=checklist.pk,
            field_code="ZYMC",
            record_version=me.version,
            by=cast["other_secretary"],
            proxy=True,
        )
    services.field_confirm(
        checklist_id=checklist.pk, field_code="ZYMC", record_version=me.version, by=cast["secretary"], proxy=True
    )
    assert Flag.objects.get(pk=flag.pk).status == S.WITHDRAWN
