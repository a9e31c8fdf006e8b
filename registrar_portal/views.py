"""Pages of the portal as a whole, which compose the apps (the apps never import each other upward)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone

from notices import selectors as notice_selectors
from students import permissions
from students.permissions import has_capability


@login_required
def home(request):
    """Everyone's start page: a student's check (or notices), the school or the department workspace."""
    student = permissions.own_student(request.user)
    if student:
        opened = student.checklists.filter(campaign__opens_at__lte=timezone.now()).exists()
        if opened or notice_selectors.notices_unread_exist(user=request.user):
            return redirect("verification:my_checks")
        return redirect("students:student_detail", pk=student.pk)
    if has_capability(request.user, "school.view"):
        return redirect("workspace:school")
    if has_capability(request.user, "workspace.use"):
        return redirect("workspace:dashboard")
    # The admissions office's work is its 专业 flags.
    if has_capability(request.user, "flag.correct"):
        return redirect("workspace:correction_queue")
    return render(request, "students/home.html")
