"""Exports: who may export what, the export log, and the stored files.

Every export a user asks for is looked up in the registry, checked against
the exporter's capability and the user's scope (out of scope is ``Http404``
and leaves no trace), then logged as an ``Export`` row and built: inside the
request when small, by a Celery task when large.  The file is kept encrypted
under PRIVATE_ROOT/exports until it expires; the scope is checked again when
the task runs and on every download.
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
from django.utils import timezone
from django.utils.translation import gettext as _

from registrar_portal.celery import enqueue_on_commit

from ..models import Export
from . import registry, storage
from .base import Exporter

logger = logging.getLogger(__name__)

XLSX_CONTENT_TYPE = storage.XLSX_CONTENT_TYPE


class ExportError(ValueError):
    """A malformed request (missing or unknown parameter); the message is for the user."""


@dataclass
class Scope:
    exporter: Exporter
    params: dict  # the cleaned parameters (objects), as the exporter reads them
    stored: dict  # the same as JSON, as logged
    label: str  # what was exported, in words, for the log

    def estimate(self, user) -> int:
        return self.exporter.estimate(user, self.params)


def export_dir() -> Path:
    return Path(settings.PRIVATE_ROOT) / "exports"


def path_of(storage_name: str) -> Path:
    return export_dir() / storage_name


def resolve_scope(*, kind: str, params, user) -> Scope:
    """The exporter and its cleaned parameters, if ``user`` may export that scope; else ``Http404``.

    An unknown kind or a missing parameter is an ``ExportError`` (the user
    picks again); a choice outside the user's scope is a 404.
    """
    exporter = registry.get(kind)
    if exporter is None:
        raise ExportError(_("未知的导出类型"))
    if not registry.allowed(user, exporter):
        raise Http404
    form = exporter.form(params, user=user)
    if not form.is_valid():
        codes = {error.code for errors in form.errors.as_data().values() for error in errors}
        if "invalid_choice" in codes or "invalid_pk_value" in codes:
            raise Http404
        missing = [str(form.fields[name].label or name) for name, errors in form.errors.as_data().items()
                   if name in form.fields and any(e.code == "required" for e in errors)]  # fmt: skip
        if missing:
            raise ExportError(_("请选择导出范围：%(keys)s") % {"keys": _("、").join(missing)})
        raise ExportError(_("导出范围有误"))
    cleaned = form.cleaned_data
    # The form limits its choices to the user's scope; the capability has the last word on each one.
    if not registry.allowed(user, exporter, cleaned):
        raise Http404
    return Scope(
        exporter=exporter,
        params=cleaned,
        stored=exporter.stored_params(cleaned),
        label=exporter.scope_label(user, cleaned),
    )


def export_request(*, kind: str, params, user, ip: str | None) -> Export:
    """Log and build (or queue) an export; ``Http404`` when out of the user's scope.

    A refused request writes nothing: the log only holds exports that ran.
    Small exports (a class, or fewer than EXPORT_INLINE_MAX_ROWS rows by one
    COUNT) are built now; the caller can serve the file at once.
    """
    from ..tasks import export_build as export_build_task

    scope = resolve_scope(kind=kind, params=params, user=user)
    export = Export.objects.create(
        kind=kind,
        params={**scope.stored, "label": scope.label},
        requested_by=user,
        ip_address=ip or None,
    )
    if scope.exporter.inline or scope.estimate(user) < settings.EXPORT_INLINE_MAX_ROWS:
        return export_build(export_id=export.pk)
    # Queued after commit so that the worker finds the row.  A broker that is down
    # does not fail the committed request: the export shows as failed, to ask again.
    enqueue_on_commit(export_build_task, export.pk, on_failure=lambda: _not_queued(export.pk))
    return export


def _not_queued(export_id: int):
    Export.objects.filter(pk=export_id, status=Export.Status.PENDING).update(
        status=Export.Status.FAILED,
        error=_("后台任务队列暂时不可用，请稍后重新导出。"),
        finished_at=timezone.now(),
    )


def _stored_scope(export: Export) -> Scope:
    params = {key: value for key, value in export.params.items() if key != "label"}
    return resolve_scope(kind=export.kind, params=params, user=export.requested_by)


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
    storage_name = f"{secrets.token_hex(16)}.xlsx.enc"
    target = path_of(storage_name)
    user = export.requested_by
    try:
        scope = _stored_scope(export)
        rows = storage.write_export(scope.exporter, scope.params, target, exported_by=user, user=user)
    except Exception as exc:
        target.unlink(missing_ok=True)
        if isinstance(exc, (Http404, ExportError)):
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
    export.file_name = scope.exporter.filename(user, scope.params, now=now)
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


def export_for_download(*, user, export_id: int, now=None) -> tuple[Export, bytes]:
    """The requester's own finished, unexpired export and its file's (decrypted) bytes; anything else is 404.

    The scope is checked again: a secretary moved to another department can
    no longer fetch what they exported for the old one.
    """
    now = now or timezone.now()
    export = (
        Export.objects.filter(requested_by=user, status=Export.Status.DONE, expires_at__gt=now, pk=export_id)
        .exclude(storage_name="")
        .first()
    )
    if export is None:
        raise Http404
    try:
        _stored_scope(export)
    except ExportError:
        raise Http404 from None
    return export, storage.read_export(path_of(export.storage_name))


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
