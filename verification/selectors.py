"""Reads for the verification pages, always scoped to the viewer."""

from django.db.models import Prefetch, Q, prefetch_related_objects
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
        Evidence.objects.filter(flag__checklist__student__in=students_for(user)).select_related(
            "flag__checklist__student"
        ),
        pk=evidence_id,
    )


def checklist_rows(checklist: Checklist, *, own: bool = True) -> list[dict]:
    """One row per checked field, in CHSI card order, with everything the page shows."""
    student = checklist.student
    prefetch_related_objects([student], "photos")
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
    for field in checklist.checked_fields():
        value = getattr(student, field.key)
        shown = field.display(value, masked=not own)
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
                "photo": photo_box(value) if field.photo else None,
            }
        )
    return rows


# The card shows a photo 120 px wide; width and height are given so that the page does not jump.
PHOTO_BOX_WIDTH = 120


def photo_box(photo) -> dict | None:
    """A photo as an <img> shows it: the Photo, its kind, and its box scaled to the card's width."""
    if photo is None:
        return None
    height = round(PHOTO_BOX_WIDTH * photo.height / photo.width) if photo.width else PHOTO_BOX_WIDTH * 4 // 3
    return {"photo": photo, "kind": photo.kind, "width": PHOTO_BOX_WIDTH, "height": height}


def missing_photos(checklist: Checklist) -> list[str]:
    """The photo kinds the campaign checks that the school does not hold for this student."""
    codes = set(checklist.campaign.field_codes)
    held = {photo.kind for photo in checklist.student.photos.all()}
    return [f.photo for f in roll_fields.PHOTO_FIELDS if f.code in codes and f.photo not in held]


def student_photos(student, *, with_problems: bool = False) -> list[dict]:
    """A student's photos side by side for staff (录取照片, then 学历照片), with the 学历照片's spec problems."""
    from students.photos.services import photo_spec_problems

    boxes = []
    for field in roll_fields.PHOTO_FIELDS:
        box = photo_box(getattr(student, field.key))
        if box is None:
            continue
        box["label"] = field.label
        box["problems"] = photo_spec_problems(box["photo"]) if with_problems and box["kind"] == "graduation" else []
        boxes.append(box)
    return boxes


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
    if only_not_done:
        # The same list as the class's export of unverified students.
        return checklists_not_done(campaign=campaign, class_group=class_group)
    return (
        Checklist.objects.filter(campaign=campaign, student__class_group=class_group)
        .select_related("student")
        .order_by("student__student_number")
    )


def checklists_not_done(*, campaign: Campaign, departments=None, class_group=None):
    """Checklists of students who have not finished, by department, class and 学号 (page and export)."""
    # Excluded students (休学, 参军入伍 …) are not expected to check: the export lists them apart.
    checklists = Checklist.objects.filter(campaign=campaign).exclude(
        state__in=(*Checklist.FINISHED, Checklist.State.EXCLUDED)
    )
    if class_group is not None:
        checklists = checklists.filter(student__class_group=class_group)
    if departments is not None:
        checklists = checklists.filter(student__department__in=departments)
    return checklists.select_related("student__department").order_by(
        "student__department__name", "student__class_name", "student__student_number"
    )


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


def correction_queue(*, user, statuses, campaign=None):
    """Flags with the registrar, in 学号 and field order: the correction queue and the CHSI correction list."""
    flags = (
        Flag.objects.filter(checklist__student__in=students_for(user), status__in=statuses)
        .select_related("checklist__student__department", "checklist__student__class_group", "checklist__campaign")
        .prefetch_related("evidence")
        .order_by("checklist__student__student_number", "field_code", "id")
    )
    if campaign is not None:
        flags = flags.filter(checklist__campaign=campaign)
    return flags


def findings_list(*, departments, kind: str = ""):
    """Import findings of students in ``departments``: the data-quality page and its export."""
    from students.models import ImportFinding

    findings = ImportFinding.objects.filter(student__department__in=departments).select_related(
        "student__department", "student__class_group"
    )
    if kind:
        findings = findings.filter(kind=kind)
    return findings.order_by("student__department__name", "student__student_number", "field_code", "id")


def checklists_not_in_roster(*, limit: int = 500):
    """Students missing from a newer full roster who still count in a campaign not yet reported:
    registrar staff confirm each exclusion (the import never deletes)."""
    return (
        Checklist.objects.filter(student__not_in_roster__isnull=False)
        .exclude(state=Checklist.State.EXCLUDED)
        .filter(Q(campaign__registrar_close_at__isnull=True) | Q(campaign__registrar_close_at__gt=timezone.now()))
        .select_related("student__department", "student__not_in_roster", "campaign")
        .order_by("student__department__name", "student__student_number")[:limit]
    )
