"""The registrar's decisions on differences between CHSI and a second source.

"CHSI is wrong" puts the field straight into the correction queue, as a flag
recorded for the student by the registrar and accepted, with the source named
as its evidence; "the school's record is wrong" lists it in the export for the
office that owns that system; "no action" closes it (students.sources).
"""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from students.errors import NotFound
from students.models import RosterSource, SourceResolution
from students.permissions import require_capability, students_for
from students.sources import Difference, difference_decide, roster_diff

from . import services
from .models import Checklist, Flag
from .services import VerificationError

Decision = SourceResolution.Decision


def source_difference(*, source_id: int, student_number: str, field: str, by) -> tuple[RosterSource, Difference]:
    """One current difference the user may see, or ``NotFound``."""
    require_capability(by, "roster.compare")
    source = RosterSource.objects.filter(pk=source_id).first()
    if source is None:
        raise NotFound
    diff = roster_diff(source, students=students_for(by), only=[student_number])
    for difference in diff.differences:
        if difference.student_number == student_number and difference.field == field:
            return source, difference
    raise NotFound


def source_difference_resolve(
    *, source_id: int, student_number: str, field: str, decision: str, by, now=None
) -> SourceResolution:
    """Record a decision; "CHSI is wrong" also opens the correction (all or nothing)."""
    if decision not in Decision.values:
        raise VerificationError(_("未知的处理方式"))
    source, difference = source_difference(source_id=source_id, student_number=student_number, field=field, by=by)
    now = now or timezone.now()
    with transaction.atomic():
        resolution = difference_decide(source=source, difference=difference, decision=decision, by=by)
        if decision == Decision.CHSI_WRONG:
            _correction_from_source(source, difference, by=by, now=now)
    return resolution


def _correction_from_source(source: RosterSource, difference: Difference, *, by, now) -> Flag:
    roll_field = difference.roll_field
    checklist = (
        Checklist.objects.filter(student_id=difference.student_id)
        .select_related("student", "campaign")
        .order_by("-campaign__opens_at")
        .first()
    )
    if checklist is None:
        raise VerificationError(_("该学生还没有核对活动：请先创建包含其年级的核对活动，再把差异转入更正。"))
    evidence = _("来源：%(source)s（%(file)s，第 %(row)s 行）") % {
        "source": source.name,
        "file": source.file_name,
        "row": difference.source_row,
    }
    flag = services.field_flag(
        checklist_id=checklist.pk,
        field_code=roll_field.code,
        claimed_value=str(difference.source_value),
        explanation=evidence,
        record_version=checklist.student.version,
        by=by,
        proxy=True,
        now=now,
    )
    for to in (Flag.Status.FORWARDED, Flag.Status.ACCEPTED):
        flag = services.flag_transition(flag_id=flag.pk, to=to, by=by, note=evidence, now=now)
    return flag
