"""Notices, help articles and in-portal messages."""

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from students.models import Student

from .models import Message, Notice, NoticeRead


def notices_for_student(*, student: Student) -> QuerySet[Notice]:
    """Published notices meant for this student's cohort and department."""
    now = timezone.now()
    return (
        Notice.objects.filter(published_at__lte=now)
        .filter(Q(cohorts__isnull=True) | Q(cohorts=student.cohort_id))
        .filter(Q(departments__isnull=True) | Q(departments=student.department_id))
        .distinct()
    )


def notices_with_read_flag(*, student: Student, user) -> list[Notice]:
    """Unread first, then newest first; each notice carries ``is_read``."""
    notices = list(notices_for_student(student=student).order_by("-published_at"))
    read = set(NoticeRead.objects.filter(user=user, notice__in=notices).values_list("notice_id", flat=True))
    for notice in notices:
        notice.is_read = notice.pk in read
    notices.sort(key=lambda n: (n.is_read, -n.published_at.timestamp()))
    return notices


def notice_mark_read(*, notice: Notice, user) -> bool:
    """Record that the user read the notice; True the first time only."""
    try:
        with transaction.atomic():
            NoticeRead.objects.create(notice=notice, user=user)
    except IntegrityError:
        return False
    return True


def notice_read_rates(*, notice: Notice, group: str) -> list[dict]:
    """Per class or department: students in the audience, how many read it.  Two queries."""
    key = {"class": "class_group__name", "department": "department__name"}[group]
    audience = Student.objects.all()
    if notice.cohorts.exists():
        audience = audience.filter(cohort__in=notice.cohorts.all())
    if notice.departments.exists():
        audience = audience.filter(department__in=notice.departments.all())
    readers = NoticeRead.objects.filter(notice=notice).values("user_id")
    rows = (
        audience.values(key)
        .annotate(total=Count("id"), read=Count("id", filter=Q(user_id__in=readers)))
        .order_by(key)
    )
    return [
        {"name": row[key] or "—", "total": row["total"], "read": row["read"], "rate": row["read"] / row["total"]}
        for row in rows
    ]


def message_send(*, user, text: str, url: str = "") -> Message | None:
    if user is None:
        return None
    return Message.objects.create(user=user, text=text[:500], url=url[:300])


def messages_unread_count(*, user) -> int:
    return Message.objects.filter(user=user, read_at__isnull=True).count()


def messages_mark_read(*, user):
    Message.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())
