"""Reads for the verification pages, always scoped to the viewer."""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone

from students import fields as roll_fields
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
        Evidence.objects.filter(flag__checklist__student__in=students_for(user)).select_related("flag"),
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


def evidence_required(field: roll_fields.RollField) -> bool:
    return field.evidence
