import os
import tempfile

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.generic import DetailView, ListView

from notices import services as notice_services

from . import fields as roll_fields
from . import permissions, selectors
from .forms import RosterUploadForm
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


class StudentDetailView(DetailView):
    template_name = "students/student_detail.html"
    context_object_name = "student"

    def get_queryset(self):
        return permissions.students_for(self.request.user).select_related("department", "class_group")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        student = self.object
        own = student.user_id == self.request.user.id
        rows = []
        for field in roll_fields.ROLL_FIELDS:
            if field.student_check == roll_fields.StudentCheck.HIDDEN:
                continue
            value = getattr(student, field.key)
            if field.key == "id_number" and not own:
                value = student.masked_id_number
            rows.append({"field": field, "value": field.display(value)})
        context.update(rows=rows, findings=student.findings.all())
        return context


student_detail = login_required(StudentDetailView.as_view())


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
        finally:
            os.unlink(path)
    return render(
        request,
        "students/roster_upload.html",
        {"form": form, "report": report, "imports": selectors.roster_import_list()[:20]},
    )
