import os
import secrets

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.generic import ListView

from . import crypto, importers, permissions, selectors
from . import fields as roll_fields
from .accounts import services as account_services
from .audit import access_log
from .filters import StudentFilter
from .forms import ColumnMappingForm, RevealIdForm, RosterUploadForm
from .models import AccessEvent
from .permissions import capability_required, has_capability
from .services import roster_import, roster_preset_save


class StudentListView(permissions.CapabilityRequiredMixin, ListView):
    capability = "student.view"
    template_name = "students/student_list.html"
    paginate_by = 50

    def get_queryset(self):
        self.form = StudentFilter(self.request.GET or None, user=self.request.user)
        return self.form.students()

    def get_context_data(self, **kwargs):
        query = self.request.GET.copy()
        query.pop("page", None)
        return super().get_context_data(form=self.form, query=query.urlencode(), **kwargs)


student_list = StudentListView.as_view()


@never_cache
@login_required
def student_detail(request, pk):
    """A student's full record.  Staff views are logged; registrar staff may reveal the
    full ID number by giving a reason, which is logged too (nothing else shows it)."""
    student = permissions.get_student_for(request.user, pk=pk)
    own = student.user_id == request.user.id
    reveal_form = (
        RevealIdForm(request.POST or None)
        if has_capability(request.user, "student.reveal_id_number", student)
        else None
    )
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
        value = field.display(getattr(student, field.key), masked=not (own or revealed))
        rows.append({"field": field, "value": value})
    context = {
        "student": student,
        "rows": rows,
        "findings": student.findings.all(),
        "own": own,
        "reveal_form": reveal_form if not revealed else None,
        "revealed": revealed,
        # Unlock / reset sign-in (students/accounts/views.py), for registrar staff.
        "signin": account_services.signin_status(student)
        if not own and has_capability(request.user, "account.unlock", student)
        else None,
    }
    return render(request, "students/student_detail.html", context)


# An upload whose headers need mapping waits here (private, per session) for the registrar's answer.
PENDING_DIR = "pending-rosters"
PENDING_MAX_AGE = 3600


def _pending_path(token: str):
    """The waiting upload, encrypted like stored exports: it is the CHSI file, with full ID numbers."""
    return os.path.join(settings.PRIVATE_ROOT, PENDING_DIR, f"{token}.roster")


def _plain_path(token: str):
    """The upload in the clear, only while an import reads it."""
    return os.path.join(settings.PRIVATE_ROOT, PENDING_DIR, f"{token}.upload")


def _pending_keep(token: str):
    """Encrypt the upload for the registrar's column mapping; the plain copy goes."""
    with open(_plain_path(token), "rb") as plain:
        data = crypto.fernet().encrypt(plain.read())
    partial = _pending_path(token) + ".part"
    with open(partial, "wb") as out:
        out.write(data)
    os.replace(partial, _pending_path(token))


def _pending_open(token: str) -> str:
    """Decrypt the waiting upload to a plain file for the import (removed right after it)."""
    with open(_pending_path(token), "rb") as stored:
        data = crypto.fernet().decrypt(stored.read())
    with open(_plain_path(token), "wb") as out:
        out.write(data)
    return _plain_path(token)


def _pending_clean():
    """Uploads left waiting for a mapping longer than an hour are deleted (they are personal data)."""
    folder = os.path.join(settings.PRIVATE_ROOT, PENDING_DIR)
    if not os.path.isdir(folder):
        return
    cutoff = timezone.now().timestamp() - PENDING_MAX_AGE
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.getmtime(path) < cutoff:
            os.unlink(path)


def _pending_remove(token: str):
    """Delete a waiting upload, and the folder once it is empty (nothing personal is left behind)."""
    path = _pending_path(token)
    if os.path.exists(path):
        os.unlink(path)
    _plain_remove(token)


def _plain_remove(token: str):
    path = _plain_path(token)
    if os.path.exists(path):
        os.unlink(path)
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass  # other uploads are still waiting


def _pending_drop(request):
    pending = request.session.pop("roster_pending", None)
    if pending:
        _pending_remove(pending["token"])


def _run_import(request, path, pending: dict, mapping: dict | None):
    report = roster_import(
        path=path,
        file_name=pending["file_name"],
        imported_by=request.user,
        dry_run=pending["dry_run"],
        encoding=pending["encoding"] or None,
        source=pending["source"] or None,
        mapping=mapping,
        full=pending.get("full", False),
    )
    # Bulk writes bypass the audit trail's model signals: the import is its own entry.
    access_log(
        request,
        AccessEvent.Action.ROSTER_IMPORT,
        target=pending["file_name"],
        detail=f"#{report.roster_import_id} +{report.created} ~{report.updated} ={report.unchanged}"
        + (" dry-run" if report.dry_run else "")
        + (f" errors {len(report.errors)}" if report.errors else ""),
        rows=report.rows,
    )
    return report


def _headers_to_map(report, mapping: dict) -> list[str]:
    """Headers the registrar is asked to map (the likeliest header row when none was found, else ignored columns),
    when the import found errors or ignored columns; none otherwise."""
    if not (report.errors or report.ignored_columns):
        return []
    headers = report.header_candidates or report.ignored_columns
    return [h for h in headers if roll_fields.header_key(h) not in mapping and not importers.recognised_header(h)]


@capability_required("roster.import")
def roster_upload(request):
    report, mapping_form = None, None
    # Bound on every POST, so a post without a file shows "this field is required" instead of nothing.
    form = (
        RosterUploadForm(request.POST, request.FILES)
        if request.method == "POST" and "remap" not in request.POST
        else RosterUploadForm()
    )
    pending, mapping = None, {}
    if request.method == "POST" and "remap" in request.POST:
        pending = request.session.get("roster_pending")
        if not pending or not os.path.exists(_pending_path(pending["token"])):
            form.add_error(None, _("等待列对应的文件已过期，请重新上传"))
            pending = None
        else:
            mapping_form = ColumnMappingForm(request.POST, headers=pending["headers"])
            if mapping_form.is_valid():
                mapping = {**pending["mapping"], **mapping_form.mapping()}
                if mapping_form.cleaned_data["preset_name"]:
                    roster_preset_save(
                        name=mapping_form.cleaned_data["preset_name"].strip(), mapping=mapping, by=request.user
                    )
                try:
                    report = _run_import(request, _pending_open(pending["token"]), pending, mapping)
                finally:
                    _plain_remove(pending["token"])
            else:
                pending = None  # show the mapping form with its errors
    elif request.method == "POST" and form.is_valid():
        _pending_drop(request)
        _pending_clean()
        upload = form.cleaned_data["file"]
        os.makedirs(os.path.join(settings.PRIVATE_ROOT, PENDING_DIR), exist_ok=True)
        token = secrets.token_urlsafe(16)
        with open(_plain_path(token), "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        preset = form.cleaned_data["preset"]
        mapping = dict(preset.mapping) if preset else {}
        pending = {
            "token": token,
            "file_name": os.path.basename(upload.name),
            "dry_run": form.cleaned_data["dry_run"],
            "encoding": form.cleaned_data["encoding"],
            "source": form.cleaned_data["source"].strip(),
            "full": form.cleaned_data["full"],
        }
        try:
            report = _run_import(request, _plain_path(token), pending, mapping)
            if _headers_to_map(report, mapping):
                _pending_keep(token)
        finally:
            _plain_remove(token)
    if report is not None and pending is not None:
        headers = _headers_to_map(report, mapping)
        if headers:
            # Keep the file so the registrar can map its columns without uploading it again.
            request.session["roster_pending"] = {**pending, "headers": headers, "mapping": mapping}
            mapping_form = ColumnMappingForm(headers=headers)
        else:
            _pending_drop(request)
            _pending_remove(pending["token"])
    return render(
        request,
        "students/roster_upload.html",
        {
            "form": form,
            "report": report,
            "mapping_form": mapping_form,
            "imports": selectors.roster_import_list()[:20],
        },
    )
