"""The review chain of a flag as the school configures it (settings.REVIEW_CHAIN, docs/roles.md).

The steps before the registrar (the class's counsellor, then the department) hold a submitted flag
one after another; the last of them forwards it to the office that corrects it: the registrar, or
the admissions office for 专业代码/专业名称 when settings.ADMISSIONS_REVIEW is on.  Every step may
return the flag to the student with a reason or add a note; who may act at which step is decided
by ``students.permissions.can_review_flag``.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from students.permissions import ADMISSIONS_FIELDS, admissions_review_on

from .models import ReviewLevel

L = ReviewLevel
ORDER = (L.COUNSELLOR, L.DEPARTMENT, L.REGISTRAR)


def chain() -> list[str]:
    """The configured steps, checked: known, in order, each once, ending with the registrar."""
    steps = [step.strip() for step in settings.REVIEW_CHAIN if step.strip()]
    if (
        not steps
        or steps[-1] != L.REGISTRAR
        or any(step not in ORDER for step in steps)
        or steps != sorted(set(steps), key=ORDER.index)
    ):
        raise ImproperlyConfigured(
            f"REVIEW_CHAIN must be some of {', '.join(ORDER)} in that order, ending with registrar: {steps}"
        )
    return steps


def review_steps() -> list[str]:
    """The steps before the registrar, in order."""
    return [step for step in chain() if step != L.REGISTRAR]


def first_step(student) -> str:
    """Where a submitted (or resubmitted) flag waits first.

    A class without a counsellor skips the counsellor's step, so that no flag waits for nobody.
    """
    for step in review_steps():
        if step == L.COUNSELLOR and not _has_counsellor(student):
            continue
        return step
    return L.REGISTRAR


def next_step(flag) -> str | None:
    """The step after the one the flag waits at, or None when the next is the correcting office."""
    steps = review_steps()
    if flag.review_level not in steps:
        return None
    later = steps[steps.index(flag.review_level) + 1 :]
    return later[0] if later else None


def office_for(field_code: str) -> str:
    """Who corrects a forwarded flag: the admissions office for its fields when the school says so."""
    if admissions_review_on() and field_code in ADMISSIONS_FIELDS:
        return L.ADMISSIONS
    return L.REGISTRAR


def _has_counsellor(student) -> bool:
    if student.class_group_id is None:
        return False
    return student.class_group.counsellors.filter(is_active=True, role="counsellor").exists()
