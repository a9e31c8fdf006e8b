import os
import tempfile

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.generic import ListView

from notices import services as notice_services

from . import fields as roll_fields
from . import permissions, selectors
from .audit import access_log
from .forms import RevealIdForm, RosterUploadForm
from .models import AccessEvent
from .permissions import registrar_required
from .services import roster_import


@login_required
def home(request):
    student = permissions.own_student(request.user)
    if student:
        opened = student.checklists.filter(campaign__opens_at__lte=timezone.now()).exists()
        if opened or notice_services.notices_unread_exist(user=request.user):
            return redirect("verification:my_checks")
        return redirect("students:student_detail", pk=student.pk)
    if permissions.is_registrar(request.user):
        return redirect("workspace:school")
    if permissions.is_secretary(request.user):
        return redirect("workspace:dashboard")
    return render(request, "students/home.html")


class StudentListView(permissions.StaffRequiredMixin, ListView):
    template_name = "students/student_list.html"
    paginate_by = 50

    def get_queryset(self):
        return selectors.student_list(fetched_by=self.request.user, query=self.request.GET.get("q", ""))


student_list = StudentListView.as_view()


@never_cache
@login_required
def student_detail(request, pk):
    """A student's full record.  Staff views are logged; registrar staff may reveal the
    full ID number by giving a reason, which is logged too (nothing else shows it)."""
    student = permissions.get_student_for(request.user, pk=pk)
    own = student.user_id == request.user.id
    reveal_form = RevealIdForm(request.POST or None) if permissions.is_registrar(request.user) else None
    revealed = False
    if request.method == "POST":
        if reveal_form is None:
            raise Http404
        if reveal_form.is_valid():
            access_log(
                request,
                AccessEvent.Action.ID_REVEAL,
                student=student,
                target=student.student_number,
                detail=reveal_form.cleaned_data["reason"],
            )
            revealed = True
    elif not own:
        access_log(request, AccessEvent.Action.RECORD_VIEW, student=student, target=student.student_number)
    rows = []
    for field in roll_fields.ROLL_FIELDS:
        if field.student_check == roll_fields.StudentCheck.HIDDEN:
            continue
        value = getattr(student, field.key)
        if field.key == "id_number" and not (own or revealed):
            value = student.masked_id_number
        rows.append({"field": field, "value": field.display(value)})
    context = {
        "student": student,
        "rows": rows,
        "findings": student.findings.all(),
        "own": own,
        "reveal_form": reveal_form if not revealed else None,
        "revealed": revealed,
    }
    return render(request, "students/student_detail.html", context)


@registrar_required
def roster_upload(request):
    report = None
    # Bound on every POST, so a post without a file shows "this field is required" instead of nothing.
    form = RosterUploadForm(request.POST, request.FILES) if request.method == "POST" else RosterUploadForm()
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        os.makedirs(settings.PRIVATE_ROOT, exist_ok=True)
        # The upload is personal data: keep it in the private folder only for the import.
        handle, path = tempfile.mkstemp(dir=settings.PRIVATE_ROOT, suffix=".roster")
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            report = roster_import(
                path=path,
                file_name=os.path.basename(upload.name),
                imported_by=request.user,
                dry_run=form.cleaned_data["dry_run"],
            )
            # Bulk writes bypass the audit trail's model signals: the import is its own entry.
            access_log(
                request,
                AccessEvent.Action.ROSTER_IMPORT,
                target=os.path.basename(upload.name),
                detail=f"#{report.roster_import_id} +{report.created} ~{report.updated} ={report.unchanged}"
                + (" dry-run" if report.dry_run else "")
                + (f" errors {len(report.errors)}" if report.errors else ""),
                rows=report.rows,
            )
        finally:
            os.unlink(path)
    return render(
        request,
        "students/roster_upload.html",
        {"form": form, "report": report, "imports": selectors.roster_import_list()[:20]},
    )
