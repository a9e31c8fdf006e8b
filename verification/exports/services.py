"""Exports: who may export what, the access log, and the stored files.

Every export a user asks for is checked against their scope first (out of
scope is ``Http404`` and leaves no trace), then logged as an ``Export`` row
and built: inside the request when small, by a Celery task when large.  The
file is kept under PRIVATE_ROOT/exports until it expires; the scope is checked
again when the task runs and on every download.
"""

import datetime
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _

from students.models import ImportFinding
from students.permissions import classes_for, departments_for, is_registrar, is_staff_member

from ..models import Campaign, Export
from . import exporters

logger = logging.getLogger(__name__)

Kind = Export.Kind
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Parameters each kind needs and may take (the rest are dropped before logging).
REQUIRED = {
    Kind.CLASS_SIGN_OFF: ("campaign", "class_group"),
    Kind.DEPARTMENT_ERRORS: ("campaign",),
    Kind.UNVERIFIED: ("campaign",),
    Kind.CHSI_CORRECTIONS: (),
    Kind.FINDINGS: (),
    Kind.ACCESS_LOG: (),
    Kind.CAMPAIGN_RECORDS: ("campaign",),
}
# "departments" is not asked for: it pins a secretary's "all my departments" to
# the ones they had when asking, so that the task and the download re-check those.
ALLOWED = {
    Kind.CLASS_SIGN_OFF: ("campaign", "class_group"),
    Kind.DEPARTMENT_ERRORS: ("campaign", "department", "departments"),
    Kind.UNVERIFIED: ("campaign", "department", "departments"),
    Kind.CHSI_CORRECTIONS: ("campaign",),
    Kind.FINDINGS: ("department", "departments", "finding_kind"),
    Kind.ACCESS_LOG: ("action", "username", "student_number"),
    Kind.CAMPAIGN_RECORDS: ("campaign",),
}
REGISTRAR_ONLY = {Kind.CHSI_CORRECTIONS, Kind.FINDINGS, Kind.ACCESS_LOG, Kind.CAMPAIGN_RECORDS}
TEXT_PARAMS = {"action", "username", "student_number"}


class ExportError(ValueError):
    """A malformed request (missing or unknown parameter); the message is for the user."""


@dataclass
class Scope:
    exporter: exporters.Exporter
    params: dict  # the cleaned parameters, as logged
    label: str  # what was exported, in words, for the log


def export_dir() -> Path:
    return Path(settings.PRIVATE_ROOT) / "exports"


def path_of(storage_name: str) -> Path:
    return export_dir() / storage_name


def clean_params(kind: str, params: dict) -> dict:
    """Keep the parameters ``kind`` takes, as ints/strings; raises ``ExportError``."""
    if kind not in REQUIRED:
        raise ExportError(_("未知的导出类型"))
    cleaned = {}
    for key in ALLOWED[kind]:
        value = params.get(key)
        if value in (None, ""):
            continue
        try:
            if key == "finding_kind":
                cleaned[key] = ImportFinding.Kind(value).value
            elif key in TEXT_PARAMS:
                cleaned[key] = str(value)[:64]
            elif key == "departments":
                cleaned[key] = sorted({int(item) for item in value})
            else:
                cleaned[key] = int(value)
        except (TypeError, ValueError):
            raise ExportError(_("导出范围有误")) from None
    missing = [key for key in REQUIRED[kind] if key not in cleaned]
    if missing:
        raise ExportError(_("请选择导出范围：%(keys)s") % {"keys": _("、").join(missing)})
    return cleaned


def _departments(user, params: dict) -> tuple[QuerySet, str]:
    """The departments to export, all within the user's; pins a secretary's choice into ``params``."""
    allowed = departments_for(user)
    if "department" in params:
        ids = [params["department"]]
    elif "departments" in params:
        ids = params["departments"]
    elif is_registrar(user):
        return allowed, _("全校")
    else:
        ids = params["departments"] = sorted(allowed.values_list("pk", flat=True))
    names = list(allowed.filter(pk__in=ids).values_list("name", flat=True))
    if not ids or len(names) != len(ids):
        raise Http404
    return allowed.filter(pk__in=ids), _("、").join(names)


def resolve_scope(*, kind: str, params: dict, user) -> Scope:
    """The exporter for a request, if ``user`` may export that scope; else ``Http404``.

    A secretary may export only their departments' classes and students; the
    CHSI correction list and the findings list are for registrar staff.
    """
    if not is_staff_member(user) or (kind in REGISTRAR_ONLY and not is_registrar(user)):
        raise Http404
    params = clean_params(kind, params)
    campaign = get_object_or_404(Campaign, pk=params["campaign"]) if "campaign" in params else None
    parts = [campaign.name] if campaign else []
    if kind == Kind.CLASS_SIGN_OFF:
        class_group = get_object_or_404(classes_for(user).select_related("department"), pk=params["class_group"])
        exporter = exporters.ClassSignOffSheet(campaign=campaign, class_group=class_group)
        parts += [class_group.department.name, class_group.name]
    elif kind == Kind.CAMPAIGN_RECORDS:
        exporter = exporters.CampaignRecords(campaign=campaign)
    elif kind == Kind.ACCESS_LOG:
        exporter = exporters.AccessLogExport(
            action=params.get("action", ""),
            username=params.get("username", ""),
            student_number=params.get("student_number", ""),
        )
        parts.append(_("访问日志"))
    elif kind == Kind.CHSI_CORRECTIONS:
        exporter = exporters.CHSICorrectionList(campaign=campaign)
        parts.append(_("全校"))
    else:
        departments, where = _departments(user, params)
        parts.append(where)
        if kind == Kind.DEPARTMENT_ERRORS:
            exporter = exporters.DepartmentErrorList(campaign=campaign, departments=departments)
        elif kind == Kind.UNVERIFIED:
            exporter = exporters.UnverifiedStudents(campaign=campaign, departments=departments)
        else:
            finding_kind = params.get("finding_kind", "")
            exporter = exporters.Findings(departments=departments, kind=finding_kind)
            if finding_kind:
                parts.append(str(ImportFinding.Kind(finding_kind).label))
    return Scope(exporter=exporter, params=params, label=" · ".join(parts))


def export_request(*, kind: str, params: dict, user, ip: str | None) -> Export:
    """Log and build (or queue) an export; ``Http404`` when out of the user's scope.

    A refused request writes nothing: the log only holds exports that ran.
    Small exports (a class, or fewer than EXPORT_INLINE_MAX_ROWS rows by one
    COUNT) are built now; the caller can serve the file at once.
    """
    from ..tasks import export_build as export_build_task

    scope = resolve_scope(kind=kind, params=params, user=user)
    export = Export.objects.create(
        kind=kind,
        params={**scope.params, "label": scope.label},
        requested_by=user,
        ip_address=ip or None,
    )
    if scope.exporter.inline or scope.exporter.estimate() < settings.EXPORT_INLINE_MAX_ROWS:
        return export_build(export_id=export.pk)
    # Queued after commit so that the worker finds the row.
    export_build_task.delay_on_commit(export.pk)
    return export


def export_build(*, export_id: int, now=None) -> Export:
    """Build one export's file.  Safe to run twice: only a pending export is built.

    The requester's scope is checked again (a secretary may have lost the
    department since asking); any failure marks the export FAILED.
    """
    # Claim the row with a conditional update so that two workers never both build it.
    claimed = Export.objects.filter(pk=export_id, status=Export.Status.PENDING).update(status=Export.Status.RUNNING)
    export = Export.objects.select_related("requested_by").get(pk=export_id)
    if not claimed:
        return export
    storage_name = f"{secrets.token_hex(16)}.xlsx"
    target = path_of(storage_name)
    partial = target.with_suffix(".part")
    try:
        scope = resolve_scope(kind=export.kind, params=export.params, user=export.requested_by)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as out:
            rows = exporters.write_xlsx(scope.exporter, out, exported_by=export.requested_by)
        partial.replace(target)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, Http404):
            error = _("导出范围已不在你的权限内")
        else:
            logger.exception("export %s failed", export_id)
            error = f"{type(exc).__name__}: {exc}"
        export.status = Export.Status.FAILED
        export.error = error[:2000]
        export.finished_at = timezone.now()
        export.save(update_fields=["status", "error", "finished_at"])
        return export
    now = now or timezone.now()
    export.status = Export.Status.DONE
    export.row_count = rows
    export.file_name = scope.exporter.filename()
    export.storage_name = storage_name
    export.finished_at = now
    export.expires_at = now + datetime.timedelta(hours=settings.EXPORT_RETENTION_HOURS)
    export.save(update_fields=["status", "row_count", "file_name", "storage_name", "finished_at", "expires_at"])
    return export


def exports_purge_expired(*, now=None) -> int:
    """Delete expired files and mark their exports EXPIRED; returns how many.

    Builds interrupted for longer than the retention time (a worker killed
    mid-run) are marked FAILED so that they stop showing as running.
    """
    now = now or timezone.now()
    expired = 0
    for export in Export.objects.filter(status=Export.Status.DONE, expires_at__lte=now).only("pk", "storage_name"):
        with transaction.atomic():
            # Conditional update: a concurrent purge counts each export once.
            if Export.objects.filter(pk=export.pk, status=Export.Status.DONE).update(
                status=Export.Status.EXPIRED, storage_name=""
            ):
                expired += 1
                if export.storage_name:
                    path_of(export.storage_name).unlink(missing_ok=True)
    stale = now - datetime.timedelta(hours=settings.EXPORT_RETENTION_HOURS)
    Export.objects.filter(status=Export.Status.RUNNING, requested_at__lt=stale).update(
        status=Export.Status.FAILED, error=_("生成中断"), finished_at=now
    )
    return expired


# ---------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------


def export_for_download(*, user, export_id: int, now=None) -> tuple[Export, Path]:
    """The requester's own finished, unexpired export and its file; anything else is 404.

    The scope is checked again: a secretary moved to another department can
    no longer fetch what they exported for the old one.
    """
    now = now or timezone.now()
    export = get_object_or_404(
        Export.objects.filter(requested_by=user, status=Export.Status.DONE, expires_at__gt=now).exclude(
            storage_name=""
        ),
        pk=export_id,
    )
    resolve_scope(kind=export.kind, params=export.params, user=user)
    path = path_of(export.storage_name)
    if not path.is_file():
        raise Http404
    return export, path


def exports_of_user(*, user) -> QuerySet[Export]:
    return Export.objects.filter(requested_by=user).order_by("-requested_at", "-pk")


def export_log(*, user_id=None, kind: str = "") -> QuerySet[Export]:
    """Every export, newest first, for the registrar's access log."""
    exports = Export.objects.select_related("requested_by").order_by("-requested_at", "-pk")
    if user_id:
        exports = exports.filter(requested_by_id=user_id)
    if kind:
        exports = exports.filter(kind=kind)
    return exports


def export_form_choices(*, user) -> dict:
    """What the "my exports" page offers to export, within the user's scope."""
    return {
        "campaigns": Campaign.objects.only("pk", "name"),
        "departments": departments_for(user).only("pk", "name"),
        "classes": classes_for(user).select_related("department").only("pk", "name", "department__name"),
        "kinds": [(value, label) for value, label in Kind.choices if value not in REGISTRAR_ONLY or is_registrar(user)],
        "finding_kinds": ImportFinding.Kind.choices if is_registrar(user) else [],
    }
