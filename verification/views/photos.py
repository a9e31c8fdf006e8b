"""Photo pages for staff: who still lacks a 学历照片, and the photo corrections zip for CHSI."""

import tempfile

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from students.audit import access_log
from students.downloads import content_disposition
from students.models import AccessEvent, Photo, Student
from students.network import client_ip
from students.permissions import capability_required, departments_for, students_for
from students.photos.services import photos_missing

from .. import selectors
from ..exports import services as export_services
from ..exports.photo_corrections import build_zip
from ..forms import WorkspaceQueryForm
from ..models import Export


@never_cache
@capability_required("workspace.use")
def missing_photos(request):
    """Students of the campaign without the photo its kind collects (学历照片), by department and class."""
    form = WorkspaceQueryForm(request.GET)
    if not form.is_valid():
        raise Http404
    campaign = selectors.campaign_for_workspace(form.cleaned_data["campaign"])
    kind = (campaign.kind_spec.collect_photo if campaign else "") or Photo.Kind.GRADUATION
    departments = departments_for(request.user)
    if form.cleaned_data["department"]:
        departments = departments.filter(pk=form.cleaned_data["department"])
        if not departments.exists():
            raise Http404
    students = Student.objects.none()
    if campaign:
        students = photos_missing(
            kind=kind,
            students=students_for(request.user).filter(checklists__campaign=campaign, department__in=departments),
        )
    students = students.select_related("department", "class_group").order_by(
        "department__name", "class_name", "student_number"
    )
    page = Paginator(students, 200).get_page(request.GET.get("page"))
    return render(
        request,
        "workspace/missing_photos.html",
        {
            "campaign": campaign,
            "campaigns": selectors.campaign_list(),
            "kind_label": Photo.Kind(kind).label,
            "page": page,
            "departments": departments_for(request.user),
            "department_id": form.cleaned_data["department"],
        },
    )


@require_POST
@capability_required("export.school_lists")
def photo_corrections_zip(request):
    """The photos to resubmit to CHSI, named by 身份证号, with their list; logged like every export."""
    try:
        scope = export_services.resolve_scope(kind="photo-corrections", params=request.POST, user=request.user)
    except export_services.ExportError as exc:
        messages.error(request, str(exc))
        return redirect("workspace:correction_queue")
    now = timezone.now()
    target = tempfile.TemporaryFile()
    count = build_zip(scope.exporter, request.user, scope.params, target, exported_by=request.user)
    file_name = scope.exporter.filename(request.user, scope.params, now=now).removesuffix(".xlsx") + ".zip"
    # Served at once and not kept: the log entry has no stored file to download again.
    Export.objects.create(
        kind=scope.exporter.key,
        params={**scope.stored, "label": scope.label, "format": "zip"},
        requested_by=request.user,
        requested_at=now,
        ip_address=client_ip(request) or None,
        status=Export.Status.EXPIRED,
        row_count=count,
        file_name=file_name,
        finished_at=now,
        expires_at=now,
    )
    access_log(
        request,
        AccessEvent.Action.EXPORT,
        target=f"{scope.exporter.label}：{scope.label}",
        detail=file_name,
        rows=count,
    )
    target.seek(0)
    response = FileResponse(target, content_type="application/zip")
    response["Content-Disposition"] = content_disposition(file_name)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
