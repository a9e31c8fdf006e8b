"""Export pages: ask for an export, list and download one's own, and the registrar's export log."""

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from students.audit import access_log
from students.downloads import private_file_response
from students.models import AccessEvent
from students.network import client_ip
from students.permissions import capability_required

from ..exports import registry
from ..exports import services as export_services
from ..exports.forms import ExportLogFilterForm
from ..models import Export


def _file_response(request, export: Export, data: bytes):
    access_log(
        request,
        AccessEvent.Action.EXPORT,
        target=f"{export.kind_label}：{export.params.get('label', '')}",
        detail=export.file_name,
        rows=export.row_count,
    )
    return private_file_response(data, filename=export.file_name, content_type=export_services.XLSX_CONTENT_TYPE)


@require_POST
@capability_required("workspace.use")
def export_create(request):
    try:
        export = export_services.export_request(
            kind=request.POST.get("kind", ""), params=request.POST, user=request.user, ip=client_ip(request)
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
@capability_required("workspace.use")
def export_list(request):
    # One form per export the user may ask for, straight from the registry.
    offers = [
        (exporter, exporter.form(None, user=request.user, auto_id=f"{exporter.key}-%s"))
        for exporter in registry.available_to(request.user)
    ]
    context = {
        "exports": export_services.exports_of_user(user=request.user)[:100],
        "now": timezone.now(),
        "retention_hours": settings.EXPORT_RETENTION_HOURS,
        "offers": offers,
    }
    return render(request, "exports/export_list.html", context)


@never_cache
@require_GET
@capability_required("workspace.use")
def export_download(request, export_id):
    return _file_response(request, *export_services.export_for_download(user=request.user, export_id=export_id))


@never_cache
@require_GET
@capability_required("export.access_log")
def export_log(request):
    form = ExportLogFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    exports = export_services.export_log(user_id=getattr(filters.get("user"), "pk", None), kind=filters.get("kind", ""))
    page = Paginator(exports, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "exports/export_log.html", {"form": form, "page_obj": page, "query": query.urlencode()})
