"""Reads for the verification pages, always scoped to the viewer."""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone

from students.permissions import students_for

from .models import Campaign, Checklist, Evidence, FieldCheck, Flag


def checklists_of_user(*, user):
    """The signed-in student's checklists in campaigns that have opened."""
    return (
        Checklist.objects.filter(
            student__user=user, student__in=students_for(user), campaign__opens_at__lte=timezone.now()
        )
        .select_related("campaign")
        .order_by("-campaign__opens_at")
    )


def checklist_of_user(*, user, campaign_id: int) -> Checklist:
    return get_object_or_404(
        checklists_of_user(user=user).select_related("student", "student__department"), campaign_id=campaign_id
    )


def flag_of_user(*, user, flag_id: int) -> Flag:
    """A flag of the signed-in student's own, or 404."""
    return get_object_or_404(
        Flag.objects.filter(checklist__student__user=user, checklist__student__in=students_for(user)).select_related(
            "checklist__campaign", "checklist__student"
        ),
        pk=flag_id,
    )


def evidence_for_viewer(*, user, evidence_id: int) -> Evidence:
    """Evidence of a student the viewer may see (own, department or school), or 404."""
    return get_object_or_404(
        Evidence.objects.filter(flag__checklist__student__in=students_for(user)).select_related(
            "flag__checklist__student"
        ),
        pk=evidence_id,
    )


def checklist_rows(checklist: Checklist, *, own: bool = True) -> list[dict]:
    """One row per checked field, in CHSI card order, with everything the page shows."""
    student = checklist.student
    answers = {a.field_code: a for a in checklist.field_checks.all()}
    flags = {}
    for flag in checklist.flags.prefetch_related(Prefetch("evidence", queryset=Evidence.objects.all())).order_by(
        "created_at"
    ):
        if flag.is_open or flag.field_code not in flags:
            flags[flag.field_code] = flag
    hints = {}
    for finding in student.findings.all():
        hints.setdefault(finding.field_code, []).append(finding.message)
    rows = []
    for field in checklist.campaign.checked_fields():
        value = getattr(student, field.key)
        shown = student.masked_id_number if field.key == "id_number" and not own else field.display(value)
        answer = answers.get(field.code)
        rows.append(
            {
                "field": field,
                "value": shown,
                "answer": answer,
                "reopened": answer is not None and answer.status == FieldCheck.Status.REOPENED,
                "flag": flags.get(field.code),
                "hints": hints.get(field.code, []),
                "authority": field.authority,
            }
        )
    return rows


def info_rows(checklist: Checklist) -> list[dict]:
    student = checklist.student
    return [
        {"field": field, "value": field.display(getattr(student, field.key))}
        for field in checklist.campaign.info_fields()
    ]


def campaign_list():
    return Campaign.objects.prefetch_related("cohorts").order_by("-opens_at")


# ---------------------------------------------------------------------------
# Workspaces (secretaries and registrar staff)
# ---------------------------------------------------------------------------


def campaign_for_workspace(campaign_id=None) -> Campaign | None:
    """The campaign a dashboard shows: the one asked for, else the latest that has opened."""
    campaigns = Campaign.objects.all()
    if campaign_id:
        return campaigns.filter(pk=campaign_id).first()
    now = timezone.now()
    return (
        campaigns.filter(opens_at__lte=now, closed_at__isnull=True).order_by("-opens_at").first()
        or campaigns.filter(opens_at__lte=now).order_by("-opens_at").first()
        or campaigns.order_by("-opens_at").first()
    )


def class_checklists(*, campaign: Campaign, class_group, only_not_done: bool = False):
    """A class's students with their checklist, in 学号 order: one query."""
    checklists = (
        Checklist.objects.filter(campaign=campaign, student__class_group=class_group)
        .select_related("student")
        .order_by("student__student_number")
    )
    if only_not_done:
        checklists = checklists.exclude(state__in=Checklist.FINISHED)
    return checklists


def review_queue(*, user, statuses, department_id=None, field_code=None):
    """Flags of the students the user may see, oldest first."""
    flags = (
        Flag.objects.filter(checklist__student__in=students_for(user), status__in=statuses)
        .select_related("checklist__student__department", "checklist__student__class_group", "checklist__campaign")
        .prefetch_related("evidence")
        .order_by("created_at", "id")
    )
    if department_id:
        flags = flags.filter(checklist__student__department_id=department_id)
    if field_code:
        flags = flags.filter(field_code=field_code)
    return flags


def findings_for_students(student_ids) -> dict[int, list]:
    from students.models import ImportFinding

    result: dict[int, list] = {}
    for finding in ImportFinding.objects.filter(student_id__in=student_ids).order_by("field_code"):
        result.setdefault(finding.student_id, []).append(finding)
    return result


def flag_for_staff(*, user, flag_id: int) -> Flag:
    return get_object_or_404(
        Flag.objects.filter(checklist__student__in=students_for(user)).select_related(
            "checklist__student__department", "checklist__campaign"
        ),
        pk=flag_id,
    )
