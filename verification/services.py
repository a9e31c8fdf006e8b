"""Verification services: campaigns, answers, flags and their review chain.

Every write a student, secretary or registrar makes goes through one function
here.  Each locks the checklist row, checks the move is allowed, writes the
history, and recomputes the checklist's state.
"""

import datetime
from collections import defaultdict

from django.db import transaction
from django.db.models import BigIntegerField, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.utils.translation import ngettext

from students import fields as roll_fields
from students.errors import NotFound, ServiceError
from students.models import Student
from students.permissions import has_capability, require_capability, review_level_of

from . import evidence as evidence_files
from . import review_chain, signals
from .models import Campaign, CampaignEvent, Checklist, Evidence, FieldCheck, Flag, FlagEvent, SupportRequest


class VerificationError(ServiceError):
    """A refused action; the message is meant for the person who tried it."""


class StaleRecordError(VerificationError):
    pass


S = Flag.Status
# The actor of the moves nobody makes by hand: a roster import bringing the corrected value.
SYSTEM = "system"
# (from, to) → the capabilities (students/permissions.py) any one of which allows the move.
# Registrar staff hold "flag.review" too, so they may also act as a department.
# "checklist.answer_own" moves may be made by staff on a paper form ("student.record_for").
TRANSITIONS = {
    (S.SUBMITTED, S.RETURNED): {"flag.review"},
    (S.SUBMITTED, S.FORWARDED): {"flag.review"},
    (S.SUBMITTED, S.WITHDRAWN): {"checklist.answer_own"},
    (S.RETURNED, S.SUBMITTED): {"checklist.answer_own"},
    (S.RETURNED, S.WITHDRAWN): {"checklist.answer_own"},
    (S.FORWARDED, S.ACCEPTED): {"flag.correct"},
    (S.FORWARDED, S.RETURNED): {"flag.correct"},
    (S.ACCEPTED, S.RETURNED): {"flag.correct"},
    (S.ACCEPTED, S.SUBMITTED_TO_CHSI): {"flag.correct"},
    (S.ACCEPTED, S.CORRECTED): {"flag.correct", SYSTEM},
    (S.SUBMITTED_TO_CHSI, S.CORRECTED): {"flag.correct", SYSTEM},
    # The new roster already holds the value the student claimed.
    (S.SUBMITTED, S.CORRECTED): {SYSTEM},
    (S.RETURNED, S.CORRECTED): {SYSTEM},
    (S.FORWARDED, S.CORRECTED): {SYSTEM},
    # The departments' deadline closes a returned flag; extending that deadline returns it again.
    (S.RETURNED, S.NOT_RESUBMITTED): {SYSTEM},
    (S.NOT_RESUBMITTED, S.RETURNED): {SYSTEM},
}
# What the review chain offers staff: action name → target status.  The actions a
# user is shown are those the map lets them make from the statuses on the page.
STAFF_ACTIONS = {
    "forward": S.FORWARDED,
    "accept": S.ACCEPTED,
    "chsi_submitted": S.SUBMITTED_TO_CHSI,
    "corrected": S.CORRECTED,
    "return": S.RETURNED,
}
STAFF_CAPABILITIES = {"flag.review", "flag.correct"}


def may_move(by, flag_or_status, to: str, *, proxy: bool = False, among=None) -> bool:
    """May ``by`` (a user or ``SYSTEM``) move the flag (or any flag in that status) to ``to``?

    Given a status instead of a flag, scope is not checked: "would they be offered it".
    ``among`` limits the capabilities that count (the review chain counts only the staff ones).
    """
    status = getattr(flag_or_status, "status", flag_or_status)
    flag = flag_or_status if hasattr(flag_or_status, "status") else None
    needed = TRANSITIONS.get((status, to), set())
    if among is not None:
        needed = needed & among
    if by == SYSTEM:
        return SYSTEM in needed
    for capability in needed - {SYSTEM}:
        if capability == "checklist.answer_own" and proxy:
            capability = "student.record_for"
        if has_capability(by, capability, flag):
            return True
    return False


def staff_actions(user, statuses) -> list[tuple[str, str]]:
    """The bulk actions (name, label) ``user`` may take on flags in ``statuses``, for the queue's menu."""
    labels = {
        # A counsellor passes the flag on to the department when the chain has both steps.
        "forward": _("审核通过，转院系审核")
        if review_level_of(user) == "counsellor" and "department" in review_chain.review_steps()
        else _("审核通过，转学籍科"),
        "accept": _("受理"),
        "chsi_submitted": _("已提交学信网更正"),
        "corrected": _("学信网已更正"),
        "return": _("退回学生修改"),
    }
    actions = [
        (name, labels[name])
        for name, to in STAFF_ACTIONS.items()
        if any(may_move(user, status, to, among=STAFF_CAPABILITIES) for status in statuses)
    ]
    if has_capability(user, "flag.note"):
        actions.append(("note", _("添加备注")))
    return actions


# Status changes the student is told about (notices issue sends the message).
STUDENT_VISIBLE = {S.RETURNED, S.FORWARDED, S.ACCEPTED, S.SUBMITTED_TO_CHSI, S.CORRECTED}


def record_value(student: Student, field: roll_fields.RollField) -> str:
    """A field's full value as CHSI's card shows it (a flag stores it encrypted)."""
    return field.display(getattr(student, field.key), masked=False)


def _seen_value(student: Student, field: roll_fields.RollField) -> str:
    # The confirmation pins the record version; a sensitive value itself is not copied again.
    return field.display(getattr(student, field.key), masked=True)[:200]


# ---------------------------------------------------------------------------
# Campaigns
# ---------------------------------------------------------------------------


def campaign_sync_students(*, campaign: Campaign) -> int:
    """Give every student of the campaign's cohorts a checklist; returns how many were added."""
    students = Student.objects.filter(cohort__in=campaign.cohorts.all()).values_list(
        "id", "department_id", "class_group_id", "cohort_id"
    )
    existing = set(campaign.checklists.values_list("student_id", flat=True))
    new = [
        Checklist(campaign=campaign, student_id=sid, department_id=d, class_group_id=c, cohort_id=k)
        for sid, d, c, k in students
        if sid not in existing
    ]
    Checklist.objects.bulk_create(new, batch_size=5000, ignore_conflicts=True)
    return len(new)


SCOPE_FIELDS = ("department_id", "class_group_id", "cohort_id")


def checklist_scope_sync(*, student_ids=None) -> int:
    """Copy each student's department, class and cohort onto their checklists (of every campaign, as
    the dashboards always counted a student where they are now); returns how many changed.

    One SELECT finds the checklists whose student moved (a join, ~0.1 s at 50,000 students), and
    only those are written: run after a roster import (``student_ids`` None: all) and when a
    student is saved.
    """
    # NULL-safe comparison on every database: a class may be none on either side.
    pairs = {
        f"{key}_{side}": Coalesce(path, Value(0), output_field=BigIntegerField())
        for key in SCOPE_FIELDS
        for side, path in (("mine", key), ("now", f"student__{key}"))
    }
    moved = Q()
    for key in SCOPE_FIELDS:
        moved |= ~Q(**{f"{key}_mine": F(f"{key}_now")})
    checklists = Checklist.objects.alias(**pairs).filter(moved)
    if student_ids is not None:
        checklists = checklists.filter(student_id__in=student_ids)
    moved_ids = list(checklists.values_list("id", flat=True))
    student = Student.objects.filter(pk=OuterRef("student_id")).order_by()
    values = {key: Subquery(student.values(key)[:1]) for key in SCOPE_FIELDS}
    changed = 0
    for start in range(0, len(moved_ids), 5000):
        changed += Checklist.objects.filter(id__in=moved_ids[start : start + 5000]).update(**values)
    return changed


def campaigns_sync_open(*, now=None) -> int:
    """After an import: new students of open campaigns' cohorts get checklists."""
    now = now or timezone.now()
    added = 0
    for campaign in Campaign.objects.filter(closed_at__isnull=True, closes_at__gt=now):
        added += campaign_sync_students(campaign=campaign)
    return added


# The later stages' defaults, counted from the students' deadline (docs/domain.md §13).
DEPARTMENT_DAYS = 2
REGISTRAR_DAYS = 3
DEADLINES = (
    ("closes_at", _lazy("核对截止")),
    ("departments_close_at", _lazy("院系汇总截止")),
    ("registrar_close_at", _lazy("学籍科上报截止")),
)


def _when(value) -> str:
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M}" if value else "—"


def campaign_log(campaign, action, *, by=None, student=None, department=None, note="", now=None) -> CampaignEvent:
    """One row of a campaign's calendar and membership history (``CampaignEvent``)."""
    return CampaignEvent.objects.create(
        campaign=campaign,
        action=action,
        student=student,
        department=department,
        actor=_user(by) if by is not None else None,
        note=note,
        created_at=now or timezone.now(),
    )


def _stage_defaults(campaign: Campaign) -> None:
    """Fill the later deadlines left empty, and keep them in order when an earlier one moves past them."""
    if not campaign.departments_close_at or campaign.departments_close_at < campaign.closes_at:
        campaign.departments_close_at = campaign.closes_at + datetime.timedelta(days=DEPARTMENT_DAYS)
    if not campaign.registrar_close_at or campaign.registrar_close_at < campaign.departments_close_at:
        campaign.registrar_close_at = campaign.departments_close_at + datetime.timedelta(days=REGISTRAR_DAYS)


@transaction.atomic
def campaign_save(*, campaign: Campaign, cohorts, by=None, now=None) -> Campaign:
    """Create or update a campaign and its checklists.

    Moving a deadline is logged; moving one later than now reopens what it closed (the students'
    deadline: overdue students; the departments' one: flags closed as not resubmitted).
    """
    now = now or timezone.now()
    if campaign.closes_at <= campaign.opens_at:
        raise VerificationError(_("截止时间必须晚于开始时间"))
    unknown = set(campaign.field_codes) - set(roll_fields.BY_CODE)
    if unknown:
        raise VerificationError(_("未知字段：%(codes)s") % {"codes": _("、").join(sorted(unknown))})
    _stage_defaults(campaign)
    before = None
    if campaign.pk is None:
        campaign.created_by = by
    else:
        before = Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        # The close is the scheduler's to set or clear, never the form's.
        campaign.closed_at = before.closed_at if before else campaign.closed_at
    campaign.save()
    campaign.cohorts.set(cohorts)
    campaign_sync_students(campaign=campaign)
    if before is not None:
        _deadlines_moved(campaign, before, by=by, now=now)
    signals.campaign_saved.send(sender=Campaign, campaign=campaign)
    return campaign


def _deadlines_moved(campaign: Campaign, before: Campaign, *, by, now) -> None:
    for name, label in DEADLINES:
        old, new = getattr(before, name), getattr(campaign, name)
        if old != new:
            note = _("%(stage)s：%(old)s → %(new)s") % {"stage": label, "old": _when(old), "new": _when(new)}
            campaign_log(campaign, CampaignEvent.Action.DEADLINE_CHANGED, by=by, note=note, now=now)
    if campaign.closed_at and campaign.closes_at > now:
        campaign_reopen(campaign=campaign, by=by, now=now)
    if campaign.departments_deadline > now:
        _flags_reopen(campaign, by=by, now=now)


def campaign_reopen(*, campaign: Campaign, by=None, now=None) -> int:
    """The students' deadline was extended after the close: the campaign is open again and the
    students it marked overdue are back to what their answers say.  Returns how many."""
    now = now or timezone.now()
    campaign.closed_at = None
    campaign.save(update_fields=["closed_at"])
    reopened = 0
    for checklist in campaign.checklists.filter(state=Checklist.State.OVERDUE).select_related("campaign", "student"):
        checklist.state = Checklist.State.NOT_STARTED
        refresh_state(checklist, now=now)
        reopened += 1
    campaign_log(
        campaign,
        CampaignEvent.Action.REOPENED,
        by=by,
        note=ngettext("%(n)s 名逾期学生可以继续核对", "%(n)s 名逾期学生可以继续核对", reopened) % {"n": reopened},
        now=now,
    )
    return reopened


def _flags_reopen(campaign: Campaign, *, by, now) -> int:
    """The departments' deadline was extended: flags it closed as not resubmitted are returned again."""
    flags = Flag.objects.filter(checklist__campaign=campaign, status=S.NOT_RESUBMITTED).select_related("checklist")
    touched = set()
    for flag in flags:
        _flag_move(flag, S.RETURNED, by=SYSTEM, note=flag.return_reason, now=now, action=FlagEvent.Action.REOPENED)
        touched.add(flag.checklist_id)
    for checklist in Checklist.objects.filter(pk__in=touched).select_related("campaign", "student"):
        refresh_state(checklist, now=now)
    return len(touched)


def _mark_overdue(checklists, *, now) -> int:
    """Unfinished checklists past their deadline become 逾期未核对 (answered some fields but not all too).

    A student whose record CHSI does not show has an open ticket: they wait for the registrar instead.
    """
    from .helpdesk import checklists_waiting_for_registrar

    return (
        checklists.filter(state__in=(Checklist.State.NOT_STARTED, Checklist.State.IN_PROGRESS))
        .filter(Q(deadline__isnull=True) | Q(deadline__lte=now))
        .exclude(pk__in=checklists_waiting_for_registrar())
        .update(state=Checklist.State.OVERDUE)
    )


def campaign_close(*, campaign_id: int, now=None) -> int:
    """Close a campaign past its students' deadline: students who have not finished become 逾期未核对.

    Students with a later individual extension stay open; a flag returned to its student stays
    amendable until the departments' deadline (``flags_close_not_resubmitted``).
    Safe to run twice; returns how many checklists were marked overdue.
    """
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.closed_at or campaign.closes_at > now:
            return 0
        overdue = _mark_overdue(campaign.checklists.all(), now=now)
        campaign.closed_at = now
        campaign.save(update_fields=["closed_at"])
        campaign_log(
            campaign,
            CampaignEvent.Action.CLOSED,
            note=ngettext("%(n)s 名学生逾期未核对", "%(n)s 名学生逾期未核对", overdue) % {"n": overdue},
            now=now,
        )
    return overdue


def flags_close_not_resubmitted(*, campaign_id: int, now=None) -> int:
    """At the departments' deadline, flags still returned to their students close as 逾期未重新提交.

    A student with a later individual extension keeps theirs.  Safe to run twice; returns how many closed.
    """
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.departments_deadline > now:
            return 0
        flags = (
            Flag.objects.select_for_update()
            .filter(checklist__campaign=campaign, status=S.RETURNED)
            .filter(Q(checklist__deadline__isnull=True) | Q(checklist__deadline__lte=now))
        )
        touched = set()
        for flag in flags:
            _flag_move(
                flag,
                S.NOT_RESUBMITTED,
                by=SYSTEM,
                note=_("院系汇总截止时仍未重新提交"),
                now=now,
                action=FlagEvent.Action.NOT_RESUBMITTED,
            )
            touched.add(flag.checklist_id)
        for checklist in Checklist.objects.filter(pk__in=touched).select_related("campaign", "student"):
            refresh_state(checklist, now=now)
        if touched:
            campaign_log(
                campaign,
                CampaignEvent.Action.FLAGS_CLOSED,
                note=ngettext("%(n)s 名学生的退回报错未重新提交", "%(n)s 名学生的退回报错未重新提交", len(touched))
                % {"n": len(touched)},
                now=now,
            )
    return len(touched)


def campaigns_close_due(*, now=None) -> int:
    """Beat job: close campaigns past the students' deadline, individual extensions that ran out, and
    returned flags past the departments' deadline.  Returns how many students were marked overdue."""
    now = now or timezone.now()
    overdue = sum(
        campaign_close(campaign_id=pk, now=now)
        for pk in Campaign.objects.filter(closed_at__isnull=True, closes_at__lte=now).values_list("pk", flat=True)
    )
    # Individual extensions that ran out in campaigns already closed.
    overdue += _mark_overdue(
        Checklist.objects.filter(campaign__closed_at__isnull=False, deadline__isnull=False), now=now
    )
    for pk in (
        Flag.objects.filter(status=S.RETURNED, checklist__campaign__closed_at__isnull=False)
        .values_list("checklist__campaign_id", flat=True)
        .distinct()
    ):
        flags_close_not_resubmitted(campaign_id=pk, now=now)
    return overdue


# ---------------------------------------------------------------------------
# Who is in: individual extensions, exclusions and inclusions
# ---------------------------------------------------------------------------


def _lock_in_scope(checklist_id: int, by, capability: str) -> Checklist:
    checklist = _lock(checklist_id)
    require_capability(by, capability, checklist)
    return checklist


def checklist_extend(*, checklist_id: int, until, by, note: str = "", now=None) -> Checklist:
    """An individual extension (sick, abroad): the student may answer until ``until``; ``None`` removes it.

    A student already marked overdue is open again at once; the change is logged.
    """
    now = now or timezone.now()
    with transaction.atomic():
        checklist = _lock_in_scope(checklist_id, by, "checklist.extend")
        if until is not None and until <= now:
            raise VerificationError(_("延期时间必须晚于现在"))
        if checklist.is_excluded:
            raise VerificationError(_("该学生不参加本次核对，无需延期"))
        checklist.deadline = until
        checklist.save(update_fields=["deadline"])
        if checklist.state == Checklist.State.OVERDUE and until is not None:
            checklist.state = Checklist.State.NOT_STARTED
        refresh_state(checklist, now=now)
        text = _("延期至 %(when)s") % {"when": _when(until)} if until else _("取消个人延期")
        if note.strip():
            text = f"{text}；{note.strip()}"
        campaign_log(
            checklist.campaign,
            CampaignEvent.Action.EXTENDED,
            by=by,
            student=checklist.student,
            note=text[:500],
            now=now,
        )
        return checklist


def checklist_exclude(*, checklist_id: int, reason: str, note: str = "", by, now=None) -> Checklist:
    """The student does not take part (少数民族预科, 休学, 参军入伍 …): out of the rates and the reminders."""
    now = now or timezone.now()
    if reason not in Checklist.Exclusion.values:
        raise VerificationError(_("请选择不参加核对的原因"))
    if reason == Checklist.Exclusion.OTHER and not note.strip():
        raise VerificationError(_("原因为“其他”时请填写说明"))
    with transaction.atomic():
        checklist = _lock_in_scope(checklist_id, by, "checklist.membership")
        checklist.excluded_reason = reason
        checklist.excluded_note = note.strip()[:200]
        checklist.state = Checklist.State.EXCLUDED
        checklist.save(update_fields=["excluded_reason", "excluded_note", "state"])
        label = Checklist.Exclusion(reason).label
        campaign_log(
            checklist.campaign,
            CampaignEvent.Action.EXCLUDED,
            by=by,
            student=checklist.student,
            note=f"{label}；{checklist.excluded_note}" if checklist.excluded_note else str(label),
            now=now,
        )
        return checklist


def checklist_restore(*, checklist_id: int, by, now=None) -> Checklist:
    """An exclusion made by mistake: the student takes part again, their answers as they were."""
    now = now or timezone.now()
    with transaction.atomic():
        checklist = _lock_in_scope(checklist_id, by, "checklist.membership")
        if not checklist.is_excluded:
            return checklist
        checklist.excluded_reason = ""
        checklist.excluded_note = ""
        checklist.state = Checklist.State.NOT_STARTED
        checklist.save(update_fields=["excluded_reason", "excluded_note", "state"])
        refresh_state(checklist, now=now)
        campaign_log(checklist.campaign, CampaignEvent.Action.RESTORED, by=by, student=checklist.student, now=now)
        return checklist


def checklist_include(*, campaign: Campaign, student: Student, reason: str, by, now=None) -> Checklist:
    """A student of another cohort (复学, 转入) takes part in this campaign."""
    now = now or timezone.now()
    require_capability(by, "checklist.membership", student)
    if reason not in Checklist.Inclusion.values:
        raise VerificationError(_("请选择加入核对的原因"))
    with transaction.atomic():
        checklist, created = Checklist.objects.get_or_create(campaign=campaign, student=student)
        if not created and not checklist.is_excluded:
            raise VerificationError(_("该学生已在本次核对中"))
        checklist.included_reason = reason
        checklist.save(update_fields=["included_reason"])
        if checklist.is_excluded:
            checklist.excluded_reason, checklist.excluded_note = "", ""
            checklist.state = Checklist.State.NOT_STARTED
            checklist.save(update_fields=["excluded_reason", "excluded_note", "state"])
            refresh_state(checklist, now=now)
        campaign_log(
            campaign,
            CampaignEvent.Action.INCLUDED,
            by=by,
            student=student,
            note=str(Checklist.Inclusion(reason).label),
            now=now,
        )
        return checklist


# ---------------------------------------------------------------------------
# Department sign-off (院系确认提交)
# ---------------------------------------------------------------------------


def department_sign_off(*, campaign: Campaign, department, remark: str = "", by, now=None):
    """The secretary signs off the department's results: the counts at this moment and a remark, logged."""
    from . import dashboards
    from .models import DepartmentSignOff

    now = now or timezone.now()
    require_capability(by, "department.sign_off", department)
    if now < campaign.opens_at:
        raise VerificationError(_("核对尚未开始，不能确认提交"))
    with transaction.atomic():
        Campaign.objects.select_for_update().get(pk=campaign.pk)
        if DepartmentSignOff.objects.filter(
            campaign=campaign, department=department, withdrawn_at__isnull=True
        ).exists():
            raise VerificationError(_("本院系已确认提交；如需修改请联系学籍科撤回"))
        counts = dashboards.counts_of(Checklist.objects.filter(campaign=campaign, department=department))
        sign_off = DepartmentSignOff.objects.create(
            campaign=campaign,
            department=department,
            signed_by=by,
            signed_at=now,
            total=counts.total,
            finished=counts.done,
            flagged=counts.flagged,
            overdue=counts.overdue,
            excluded=counts.excluded,
            remark=remark.strip()[:1000],
        )
        campaign_log(
            campaign,
            CampaignEvent.Action.SIGNED_OFF,
            by=by,
            department=department,
            note=_(
                "应核对 %(total)s 人，已完成 %(done)s 人，有报错 %(flagged)s 人，逾期 %(overdue)s 人，不参加 %(excluded)s 人"
            )
            % {
                "total": counts.total,
                "done": counts.done,
                "flagged": counts.flagged,
                "overdue": counts.overdue,
                "excluded": counts.excluded,
            },
            now=now,
        )
        signals.department_signed_off.send(sender=DepartmentSignOff, sign_off=sign_off)
        return sign_off


def sign_off_withdraw(*, sign_off_id: int, reason: str, by, now=None):
    """Registrar staff withdraw a department's sign-off (the department signs off again), with a reason."""
    from .models import DepartmentSignOff

    now = now or timezone.now()
    require_capability(by, "department.withdraw_sign_off")
    if not reason.strip():
        raise VerificationError(_("撤回时请填写原因"))
    with transaction.atomic():
        sign_off = DepartmentSignOff.objects.select_for_update().filter(pk=sign_off_id).first()
        if sign_off is None:
            raise NotFound
        if sign_off.withdrawn_at is None:
            sign_off.withdrawn_at = now
            sign_off.withdrawn_by = by
            sign_off.withdraw_reason = reason.strip()[:1000]
            sign_off.save(update_fields=["withdrawn_at", "withdrawn_by", "withdraw_reason"])
            campaign_log(
                sign_off.campaign,
                CampaignEvent.Action.SIGN_OFF_WITHDRAWN,
                by=by,
                department=sign_off.department,
                note=sign_off.withdraw_reason,
                now=now,
            )
            signals.sign_off_withdrawn.send(sender=DepartmentSignOff, sign_off=sign_off)
        return sign_off


# ---------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------


def _lock(checklist_id: int) -> Checklist:
    try:
        return Checklist.objects.select_for_update().select_related("campaign", "student").get(pk=checklist_id)
    except Checklist.DoesNotExist:
        raise NotFound from None


def _lock_flag(flag_id: int) -> tuple[Checklist, Flag]:
    """A flag and its checklist, locked (checklist first, as every writer does); ``NotFound`` if missing."""
    checklist_id = Flag.objects.filter(pk=flag_id).values_list("checklist_id", flat=True).first()
    if checklist_id is None:
        raise NotFound
    checklist = _lock(checklist_id)
    flag = Flag.objects.select_for_update().get(pk=flag_id)
    return checklist, flag


def _require_answerer(by, checklist: Checklist, *, proxy: bool) -> None:
    """The student themself, or staff in scope recording a paper form; else ``NotFound``.

    ``SYSTEM`` answers for the student only in the demo seed (students there have no account yet).
    """
    if by == SYSTEM:
        return
    require_capability(by, "student.record_for" if proxy else "checklist.answer_own", checklist)


def _user(by):
    """The user to store as having done something: none for the system."""
    return None if by == SYSTEM else by


def _check_writable(checklist: Checklist, record_version: int | None, *, now, flag: Flag | None = None):
    """Open for answers (an individual extension included); a returned ``flag`` also until the departments' deadline."""
    if checklist.is_excluded:
        raise VerificationError(_("你不参加本次核对，无需操作"))
    amending = flag is not None and flag.is_returned and checklist.returned_amendable(now)
    if not checklist.is_open(now) and not amending:
        raise VerificationError(_("核对已截止，不能再修改"))
    if record_version is not None and int(record_version) != checklist.student.version:
        raise StaleRecordError(_("你的学籍信息在你打开页面后已更新，请查看最新信息后重新核对。"))


def _checked_field(checklist: Checklist, field_code: str) -> roll_fields.RollField:
    for field in checklist.checked_fields():
        if field.code == field_code:
            return field
    raise VerificationError(_("该字段无需核对"))


def _past_close(checklist: Checklist, now) -> bool:
    """Has the close passed for this student (processed, and no individual extension left)?"""
    if checklist.campaign.closed_at is None or (checklist.deadline and now < checklist.deadline):
        return False
    from .helpdesk import checklists_waiting_for_registrar

    return not checklists_waiting_for_registrar().filter(checklist_id=checklist.pk).exists()


def refresh_state(checklist: Checklist, *, now=None) -> Checklist:
    """Recompute and save a checklist's state from its answers and flags."""
    now = now or timezone.now()
    codes = [f.code for f in checklist.checked_fields()]
    answers = dict(checklist.field_checks.values_list("field_code", "status"))
    flag_statuses = set(checklist.flags.values_list("status", flat=True))
    answered = [c for c in codes if answers.get(c) in (FieldCheck.Status.CONFIRMED, FieldCheck.Status.FLAGGED)]
    if S.RETURNED in flag_statuses:
        state = Checklist.State.RETURNED
    elif codes and len(answered) == len(codes):
        flagged = any(answers[c] == FieldCheck.Status.FLAGGED for c in codes)
        state = Checklist.State.FLAGGED if flagged else Checklist.State.CONFIRMED
    elif answers:
        state = Checklist.State.IN_PROGRESS
    else:
        state = Checklist.State.NOT_STARTED
    if checklist.state == Checklist.State.EXCLUDED:
        state = Checklist.State.EXCLUDED
    elif state in (Checklist.State.NOT_STARTED, Checklist.State.IN_PROGRESS) and _past_close(checklist, now):
        state = Checklist.State.OVERDUE
    checklist.state = state
    if state in Checklist.FINISHED:
        checklist.finished_at = checklist.finished_at or now
    # The first finish is kept when the check reopens (a changed value, a returned flag): the completion
    # history never drops, and "finished, then reopened" is told apart from "never finished".
    checklist.save(update_fields=["state", "finished_at", "last_activity_at", "attested_at"])
    return checklist


def _answer(checklist, fields, status, *, by, proxy, now):
    """Record the student's answer for some fields in one statement (an upsert)."""
    FieldCheck.objects.bulk_create(
        [
            FieldCheck(
                checklist=checklist,
                field_code=field.code,
                status=status,
                seen_value=_seen_value(checklist.student, field),
                record_version=checklist.student.version,
                previous_value="",
                answered_at=now,
                answered_by=_user(by),
                is_proxy=proxy,
            )
            for field in fields
        ],
        update_conflicts=True,
        unique_fields=["checklist", "field_code"],
        update_fields=[
            "status",
            "seen_value",
            "record_version",
            "previous_value",
            "answered_at",
            "answered_by",
            "is_proxy",
        ],
    )


def _log(flag, action: FlagEvent.Action, *, by, from_status="", to_status="", note="", now=None):
    FlagEvent.objects.create(
        flag=flag,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor=_user(by),
        # The step of the chain the actor acts at, so that the history reads "辅导员 … 院系 … 学籍科".
        level=review_level_of(_user(by)) if by != SYSTEM else "",
        note=note,
        created_at=now or timezone.now(),
    )


def field_confirm(*, checklist_id: int, field_code: str, record_version, by, proxy=False, now=None) -> Checklist:
    """The student says one field is right.  An open flag of theirs on it is withdrawn."""
    now = now or timezone.now()
    with transaction.atomic():
        checklist = _lock(checklist_id)
        _require_answerer(by, checklist, proxy=proxy)
        _check_writable(checklist, record_version, now=now)
        field = _checked_field(checklist, field_code)
        flag = checklist.flags.filter(field_code=field_code, status__in=Flag.OPEN).first()
        if flag:
            if not flag.is_editable:
                raise VerificationError(_("该报错已转学籍科处理，不能改为正确；如有疑问请联系学籍科。"))
            _flag_move(flag, S.WITHDRAWN, by=by, proxy=proxy, note=_("学生改为确认正确"), now=now)
        _answer(checklist, [field], FieldCheck.Status.CONFIRMED, by=by, proxy=proxy, now=now)
        checklist.last_activity_at = now
        return refresh_state(checklist, now=now)


def checklist_confirm_all(*, checklist_id: int, record_version, by, proxy=False, now=None) -> Checklist:
    """全部正确: confirm every field at once; refused while any field is flagged."""
    now = now or timezone.now()
    with transaction.atomic():
        checklist = _lock(checklist_id)
        _require_answerer(by, checklist, proxy=proxy)
        _check_writable(checklist, record_version, now=now)
        if (
            checklist.flags.filter(status__in=Flag.OPEN).exists()
            or checklist.field_checks.filter(status=FieldCheck.Status.FLAGGED).exists()
        ):
            raise VerificationError(_("你有报错的字段，不能一键确认全部正确；请逐项核对。"))
        _answer(checklist, checklist.checked_fields(), FieldCheck.Status.CONFIRMED, by=by, proxy=proxy, now=now)
        checklist.attested_at = now
        checklist.last_activity_at = now
        return refresh_state(checklist, now=now)


def checklist_confirm_rest(*, checklist_id: int, record_version, by, proxy=False, now=None) -> Checklist:
    """其余全部正确: once some field is flagged, confirm every field that is not, keeping the flags.

    Fields already answered 正确 are confirmed again against the current record; flagged fields
    (an open flag or a 有误 answer) are left as they are.  It is not 全部正确, so ``attested_at`` stays empty.
    """
    now = now or timezone.now()
    with transaction.atomic():
        checklist = _lock(checklist_id)
        _require_answerer(by, checklist, proxy=proxy)
        _check_writable(checklist, record_version, now=now)
        flagged = set(checklist.flags.filter(status__in=Flag.OPEN).values_list("field_code", flat=True))
        flagged |= set(
            checklist.field_checks.filter(status=FieldCheck.Status.FLAGGED).values_list("field_code", flat=True)
        )
        rest = [field for field in checklist.checked_fields() if field.code not in flagged]
        _answer(checklist, rest, FieldCheck.Status.CONFIRMED, by=by, proxy=proxy, now=now)
        checklist.last_activity_at = now
        return refresh_state(checklist, now=now)


def _validate_claim(field, claimed_value: str, student: Student) -> str:
    try:
        value = field.clean_claim(claimed_value, id_type=student.id_type)
    except ValueError as exc:
        raise VerificationError(str(exc)) from None
    if field.same(value, getattr(student, field.key)):
        raise VerificationError(_("填写的正确值与学信网记录相同"))
    return value


def _store_files(files) -> list[evidence_files.StoredFile]:
    """Validate and write uploads before the transaction; all or none are kept."""
    if len(files) > evidence_files.MAX_FILES_PER_FLAG:
        raise VerificationError(_("每个报错最多上传 %(n)s 个文件") % {"n": evidence_files.MAX_FILES_PER_FLAG})
    stored = []
    try:
        evidence_files.check_upload_cost(files)
        for upload in files:
            stored.append(evidence_files.store_upload(upload))
    except evidence_files.EvidenceError as exc:
        _discard(stored)
        raise VerificationError(str(exc)) from None
    return stored


def _discard(stored):
    for item in stored:
        evidence_files.delete_file(item.storage_name)


def _attach(flag: Flag, stored, *, by):
    # A double submit uploads the same file again; re-encoding makes identical
    # uploads byte-identical, so keep one copy instead of listing it twice.
    held = set(flag.evidence.values_list("sha256", flat=True))
    fresh = []
    for item in stored:
        if item.sha256 in held:
            evidence_files.delete_file(item.storage_name)
        else:
            held.add(item.sha256)
            fresh.append(item)
    stored = fresh
    if flag.evidence.count() + len(stored) > evidence_files.MAX_FILES_PER_FLAG:
        raise VerificationError(_("每个报错最多上传 %(n)s 个文件") % {"n": evidence_files.MAX_FILES_PER_FLAG})
    return Evidence.objects.bulk_create(
        [
            Evidence(
                flag=flag,
                storage_name=item.storage_name,
                original_name=item.original_name,
                content_type=item.content_type,
                size=item.size,
                sha256=item.sha256,
                uploaded_by=_user(by),
            )
            for item in stored
        ]
    )


def field_flag(
    *,
    checklist_id: int,
    field_code: str,
    claimed_value: str,
    explanation: str = "",
    files=(),
    record_version,
    by,
    proxy=False,
    now=None,
) -> Flag:
    """The student says a field is wrong, giving the right value and evidence.

    A second tab or a double click updates the one open flag instead of adding
    another (the database allows one open flag per field).
    """
    now = now or timezone.now()
    stored = _store_files(list(files))
    try:
        with transaction.atomic():
            checklist = _lock(checklist_id)
            _require_answerer(by, checklist, proxy=proxy)
            flag = checklist.flags.filter(field_code=field_code, status__in=Flag.OPEN).first()
            _check_writable(checklist, record_version, now=now, flag=flag)
            field = _checked_field(checklist, field_code)
            value = _validate_claim(field, claimed_value, checklist.student)
            if flag:
                return _amend(flag, checklist, field, value, explanation, stored, by=by, proxy=proxy, now=now)
            flag = Flag.objects.create(
                checklist=checklist,
                field_code=field_code,
                recorded_value=record_value(checklist.student, field)[:200],
                claimed_value=value,
                explanation=explanation.strip(),
                record_version=checklist.student.version,
                created_by=_user(by),
                is_proxy=proxy,
                review_level=review_chain.first_step(checklist.student),
            )
            _attach(flag, stored, by=by)
            _log(flag, FlagEvent.Action.SUBMITTED, by=by, to_status=S.SUBMITTED, note=flag.explanation, now=now)
            _answer(checklist, [field], FieldCheck.Status.FLAGGED, by=by, proxy=proxy, now=now)
            checklist.last_activity_at = now
            checklist.attested_at = None  # "all correct" no longer holds
            refresh_state(checklist, now=now)
            return flag
    except BaseException:
        _discard(stored)
        raise


def flag_amend(
    *, flag_id: int, claimed_value: str, explanation: str = "", files=(), record_version, by, now=None
) -> Flag:
    """The student corrects a flag (typically one returned to them) and resubmits it."""
    now = now or timezone.now()
    stored = _store_files(list(files))
    try:
        with transaction.atomic():
            checklist, flag = _lock_flag(flag_id)
            _require_answerer(by, checklist, proxy=False)
            _check_writable(checklist, record_version, now=now, flag=flag)
            field = _checked_field(checklist, flag.field_code)
            value = _validate_claim(field, claimed_value, checklist.student)
            return _amend(flag, checklist, field, value, explanation, stored, by=by, proxy=False, now=now)
    except BaseException:
        _discard(stored)
        raise


def _amend(flag, checklist, field, value, explanation, stored, *, by, proxy, now) -> Flag:
    if not flag.is_editable:
        raise VerificationError(_("该报错已转学籍科处理，不能再修改；如有疑问请联系学籍科。"))
    edited = (flag.claimed_value, flag.explanation) != (value, explanation.strip())
    flag.claimed_value = value
    flag.explanation = explanation.strip()
    flag.recorded_value = record_value(checklist.student, field)[:200]
    flag.record_version = checklist.student.version
    flag.save(update_fields=["claimed_value", "explanation", "recorded_value", "record_version", "updated_at"])
    added = _attach(flag, stored, by=by)
    if flag.status == S.RETURNED:
        # A resubmitted flag goes through the whole chain again, from its first step.
        flag.review_level = review_chain.first_step(checklist.student)
        flag.save(update_fields=["review_level"])
        _flag_move(
            flag, S.SUBMITTED, by=by, proxy=proxy, note=flag.explanation, now=now, action=FlagEvent.Action.RESUBMITTED
        )
    elif edited or added:
        # A double submit changes nothing and leaves no trace in the history.
        _log(flag, FlagEvent.Action.AMENDED, by=by, note=flag.explanation, now=now)
    _answer(checklist, [field], FieldCheck.Status.FLAGGED, by=by, proxy=proxy, now=now)
    checklist.last_activity_at = now
    refresh_state(checklist, now=now)
    return flag


def flag_withdraw(*, flag_id: int, by, now=None) -> Flag:
    """The student takes a flag back; the field is unanswered again."""
    now = now or timezone.now()
    with transaction.atomic():
        checklist, flag = _lock_flag(flag_id)
        _require_answerer(by, checklist, proxy=False)
        _check_writable(checklist, None, now=now, flag=flag)
        _flag_move(flag, S.WITHDRAWN, by=by, now=now)
        checklist.field_checks.filter(field_code=flag.field_code, status=FieldCheck.Status.FLAGGED).delete()
        checklist.last_activity_at = now
        refresh_state(checklist, now=now)
        return flag


def _flag_move(flag: Flag, to: str, *, by, proxy=False, note="", now=None, action=None):
    """The one place a flag changes status: the move must be in ``TRANSITIONS`` and allowed to ``by``."""
    if not may_move(by, flag, to, proxy=proxy):
        raise VerificationError(
            _("报错当前为“%(status)s”，不能改为“%(to)s”") % {"status": flag.get_status_display(), "to": S(to).label}
        )
    previous = flag.status
    flag.status = to
    if to == S.FORWARDED:
        # Past the last step before the registrar: the office that corrects it holds it now.
        flag.review_level = review_chain.office_for(flag.field_code)
    if to == S.RETURNED:
        flag.return_reason = note
    flag.save(update_fields=["status", "return_reason", "review_level", "updated_at"])
    if to == S.WITHDRAWN:
        # docs/privacy.md: a withdrawn flag keeps no evidence.  Rows go now; the files once this commits
        # (retention._evidence_file_goes_with_its_row), so a rollback keeps both.
        flag.evidence.all().delete()
    _log(flag, action or FlagEvent.Action(to), by=by, from_status=previous, to_status=to, note=note, now=now)
    signals.flag_moved.send(sender=Flag, flag=flag, previous=previous, to=to, note=note, by=by)


def flag_transition(*, flag_id: int, to: str, by, note: str = "", now=None) -> Flag:
    """Move a flag along the review chain (department and registrar actions).

    A flag missing or out of the actor's scope is ``NotFound``; a move not in
    ``TRANSITIONS`` or not allowed to the actor's capabilities is refused.
    The student's own moves (resubmit, withdraw) have their own services.
    """
    now = now or timezone.now()
    with transaction.atomic():
        checklist, flag = _lock_flag(flag_id)
        require_capability(by, "student.view", checklist)
        if not may_move(by, flag, to, among=STAFF_CAPABILITIES):
            raise VerificationError(
                _("报错当前为“%(status)s”，不能改为“%(to)s”") % {"status": flag.get_status_display(), "to": S(to).label}
            )
        if to == S.RETURNED and not note.strip():
            raise VerificationError(_("退回时请填写原因"))
        if to == S.FORWARDED and flag.status == S.SUBMITTED:
            step = review_chain.next_step(flag)
            if step is not None:
                # Passed on to the next step before the registrar (辅导员 → 院系): the status stays.
                flag.review_level = step
                flag.save(update_fields=["review_level", "updated_at"])
                _log(flag, FlagEvent.Action.PASSED_ON, by=by, note=note.strip(), now=now)
                return flag
        _flag_move(flag, to, by=by, note=note.strip(), now=now)
        refresh_state(checklist, now=now)
        return flag


def flag_note(*, flag_id: int, by, note: str, now=None):
    """A staff note in a flag's history; ``NotFound`` if the flag is missing or out of scope."""
    flag = Flag.objects.select_related("checklist").filter(pk=flag_id).first()
    if flag is None:
        raise NotFound
    require_capability(by, "flag.note", flag)
    if not note.strip():
        raise VerificationError(_("备注不能为空"))
    _log(flag, FlagEvent.Action.NOTE, by=by, note=note.strip(), now=now)


def support_request_create(*, checklist_id: int, kind: str, note: str = "", by, now=None) -> SupportRequest:
    """ "Record not found on CHSI" or a CHSI account problem; one open request per kind."""
    now = now or timezone.now()
    with transaction.atomic():
        checklist = _lock(checklist_id)
        _require_answerer(by, checklist, proxy=False)
        _check_writable(checklist, None, now=now)
        request, _created = SupportRequest.objects.get_or_create(
            checklist=checklist,
            kind=kind,
            status__in=SupportRequest.OPEN,
            defaults={"note": note.strip(), "status": SupportRequest.Status.NEW},
        )
        checklist.last_activity_at = now
        checklist.save(update_fields=["last_activity_at"])
        return request


# ---------------------------------------------------------------------------
# Roster re-imports
# ---------------------------------------------------------------------------


def roster_changes_apply(*, changes: dict, roster_import_id=None, note: str | None = None, now=None) -> int:
    """Reopen answers whose value a roster import changed, in open campaigns.

    ``changes`` maps student id → {field key: (old, new)}.  A confirmed field
    whose value really changed (as the registry compares it) is reopened for
    the student, showing old → new.  A flagged field whose new value is the
    one the student claimed is corrected: the flag closes and the field
    reopens so the student confirms the fix.  A flagged photo has no claimed
    value: any new photo is the answer to the flag.  Returns the number reopened.
    """
    now = now or timezone.now()
    if note is None:
        note = _("名单导入 #%(id)s 已带来更正后的值") % {"id": roster_import_id}
    by_code = defaultdict(dict)
    for student_id, fields in changes.items():
        for key, (old, new) in fields.items():
            field = roll_fields.BY_KEY.get(key)
            if field and not field.same(old, new):
                by_code[student_id][field.code] = (field, old, new)
    if not by_code:
        return 0
    reopened = 0
    student_ids = list(by_code)
    open_campaigns = Q(checklist__campaign__closed_at__isnull=True, checklist__campaign__closes_at__gt=now)
    touched = set()
    with transaction.atomic():
        for start in range(0, len(student_ids), 2000):
            chunk = student_ids[start : start + 2000]
            checks = FieldCheck.objects.filter(open_campaigns, checklist__student_id__in=chunk).select_related(
                "checklist"
            )
            # Oldest first, so that a field flagged again after an earlier fix
            # is matched with its newest flag, not the one already corrected.
            flags = {
                (f.checklist_id, f.field_code): f
                for f in Flag.objects.filter(
                    checklist__student_id__in=chunk, status__in=Flag.OPEN + (S.CORRECTED,)
                ).order_by("created_at", "id")
            }
            for check in checks:
                change = by_code[check.checklist.student_id].get(check.field_code)
                if not change:
                    continue
                field, old, new = change
                if check.status == FieldCheck.Status.FLAGGED:
                    flag = flags.get((check.checklist_id, check.field_code))
                    if not flag or not (field.photo or field.same(flag.claimed_value, new)):
                        continue
                    if flag.status != S.CORRECTED:
                        _flag_move(
                            flag,
                            S.CORRECTED,
                            by=SYSTEM,
                            note=note,
                            now=now,
                            action=FlagEvent.Action.CORRECTED_BY_IMPORT,
                        )
                elif check.status != FieldCheck.Status.CONFIRMED:
                    continue
                check.status = FieldCheck.Status.REOPENED
                # The column is plain text: a sensitive old value is kept masked.
                check.previous_value = field.display(old, masked=True) if field.sensitive else check.seen_value
                check.save(update_fields=["status", "previous_value"])
                touched.add(check.checklist_id)
                reopened += 1
        for checklist in Checklist.objects.filter(pk__in=touched).select_related("campaign"):
            refresh_state(checklist, now=now)
    return reopened


def photo_changes_apply(*, changes: dict, added: list[int], now=None) -> int:
    """After a photo package: answers on a replaced photo reopen (the student looks at the new one);
    a finished checklist that now has a photo to look at is refreshed.  Returns the number reopened.

    The confirmation of the old photo stays as the reopened answer's previous value and the first
    finish is kept, as for a roster re-import.
    """
    now = now or timezone.now()
    reopened = roster_changes_apply(changes=changes, note=_("照片导入带来了新照片"), now=now) if changes else 0
    if added:
        finished = Checklist.objects.filter(
            student_id__in=added,
            state__in=Checklist.FINISHED,
            campaign__closed_at__isnull=True,
            campaign__closes_at__gt=now,
        ).select_related("campaign", "student")
        for checklist in finished:
            refresh_state(checklist, now=now)
    return reopened


def flags_transition_bulk(*, flag_ids: list[int], to: str, by, note: str = "", now=None) -> tuple[int, list[str]]:
    """The same move for many flags; each is its own transaction, refusals are collected.

    Returns (moved, messages for the refused ones).  Each message names the
    student and the field; flags that are missing and flags out of the actor's
    scope get one and the same message, so that neither can be told apart.
    """
    moved, refused, not_found = 0, [], 0
    for flag_id in flag_ids:
        try:
            flag_transition(flag_id=flag_id, to=to, by=by, note=note, now=now)
        except NotFound:
            not_found += 1
        except VerificationError as exc:
            flag = Flag.objects.select_related("checklist__student").get(pk=flag_id)
            refused.append(_("%(flag)s：%(reason)s") % {"flag": flag_title(flag), "reason": exc})
        else:
            moved += 1
    if not_found:
        refused.append(
            ngettext(
                "%(n)s 条选中的报错不存在或已不在你的处理范围内。",
                "%(n)s 条选中的报错不存在或已不在你的处理范围内。",
                not_found,
            )
            % {"n": not_found}
        )
    return moved, refused


def flag_title(flag: Flag) -> str:
    """A flag in words for staff: whose and which field, e.g. 王小明（2025010001）的“班级”."""
    student = flag.checklist.student
    return _("%(name)s（%(number)s）的“%(field)s”") % {
        "name": student.name,
        "number": student.student_number,
        "field": flag.field.label,
    }


# ---------------------------------------------------------------------------
# Class progress links
# ---------------------------------------------------------------------------

PROGRESS_LINK_DAYS = 14


def progress_link_create(*, campaign: Campaign, class_group, by, days: int = PROGRESS_LINK_DAYS, now=None):
    """A new link to a class's progress for its WeChat group; valid ``days`` days."""
    import secrets

    from .models import ClassProgressLink

    require_capability(by, "class.share_progress", class_group)
    now = now or timezone.now()
    days = max(1, min(int(days), 60))
    return ClassProgressLink.objects.create(
        token=secrets.token_urlsafe(24),
        campaign=campaign,
        class_group=class_group,
        created_by=by,
        created_at=now,
        expires_at=now + datetime.timedelta(days=days),
    )


def progress_link_revoke(*, link, by, now=None):
    """Revoke a class progress link; ``by`` must be allowed to share that class's progress."""
    require_capability(by, "class.share_progress", link.class_group)
    if link.revoked_at is None:
        link.revoked_at = now or timezone.now()
        link.save(update_fields=["revoked_at"])
    return link
