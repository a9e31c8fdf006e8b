"""Reads of roll records, always through the viewer's scope."""

from django.db.models import Q, QuerySet

from .models import RosterImport, Student
from .permissions import students_for


def student_list(
    *,
    fetched_by,
    query: str = "",
    department_id: int | None = None,
    class_group_id: int | None = None,
    roll_status: str = "",
) -> QuerySet[Student]:
    students = students_for(fetched_by).select_related("department", "class_group")
    if department_id:
        students = students.filter(department_id=department_id)
    if class_group_id:
        students = students.filter(class_group_id=class_group_id)
    if roll_status:
        students = students.filter(roll_status=roll_status)
    query = query.strip()
    if query:
        students = students.filter(Q(student_number__startswith=query) | Q(name__contains=query))
    return students.order_by("student_number")


def roster_import_list() -> QuerySet[RosterImport]:
    return RosterImport.objects.select_related("imported_by")
