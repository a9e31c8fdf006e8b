"""Export pages: ask for an export, list and download one's own, and the registrar's access log."""

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from students.audit import access_log
from students.models import AccessEvent
from students.permissions import registrar_required, staff_required

from ..exports import services as export_services
from ..exports.forms import ExportLogFilterForm, ExportRequestForm
from ..models import Export


def _file_response(request, export: Export, path) -> FileResponse:
    access_log(
        request,
        AccessEvent.Action.EXPORT,
        target=f"{export.get_kind_display()}：{export.params.get('label', '')}",
        detail=export.file_name,
        rows=export.row_count,
    )
    response = FileResponse(
        open(path, "rb"),
        as_attachment=True,
        filename=export.file_name,
        content_type=export_services.XLSX_CONTENT_TYPE,
    )
    # Personal data: no proxy or browser cache keeps a copy.
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
@staff_required
def export_create(request):
    form = ExportRequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("导出请求有误，请重新选择。"))
        return redirect("exports:export_list")
    data = form.cleaned_data
    try:
        export = export_services.export_request(
            kind=data["kind"], params=data, user=request.user, ip=get_client_ip_address(request)
        )
    except export_services.ExportError as exc:
        messages.error(request, str(exc))
        return redirect("exports:export_list")
    if export.status == Export.Status.DONE:
        return _file_response(request, *export_services.export_for_download(user=request.user, export_id=export.pk))
    if export.status == Export.Status.FAILED:
        messages.error(request, _("导出失败，请稍后重试或联系学籍科。"))
    else:
        messages.success(request, _("数据较多，正在后台生成；完成后可在本页下载。"))
    return redirect("exports:export_list")


@never_cache
@require_GET
@staff_required
def export_list(request):
    context = {
        "exports": export_services.exports_of_user(user=request.user)[:100],
        "now": timezone.now(),
        "retention_hours": settings.EXPORT_RETENTION_HOURS,
        **export_services.export_form_choices(user=request.user),
    }
    return render(request, "exports/export_list.html", context)


@never_cache
@require_GET
@staff_required
def export_download(request, export_id):
    return _file_response(request, *export_services.export_for_download(user=request.user, export_id=export_id))


@never_cache
@require_GET
@registrar_required
def export_log(request):
    form = ExportLogFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    exports = export_services.export_log(user_id=getattr(filters.get("user"), "pk", None), kind=filters.get("kind", ""))
    page = Paginator(exports, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "exports/export_log.html", {"form": form, "page_obj": page, "query": query.urlencode()})
