"""The REST API for campus systems (教务, 学工, data platforms): version 1.

Built with django-ninja, which serves the OpenAPI schema at
``/api/v1/openapi.json`` and its documentation at ``/api/v1/docs``.  A client
authenticates with ``Authorization: Bearer <token>``; it acts through its own
service account, so each endpoint scopes its queries with the same
``students.permissions`` functions as the pages (out of scope is 404).  Every
call is rate limited per client and written to the access log; ID numbers are
masked unless the client may reveal them, and such reads are logged as reveals.
"""

import datetime
import os
import tempfile

from django.conf import settings
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404
from ninja import File, Form, NinjaAPI, Router, Schema
from ninja.files import UploadedFile
from ninja.openapi.docs import ABS_TPL_PATH, Swagger
from ninja.responses import Status
from ninja.security import HttpBearer

from students import fields as roll_fields
from students import permissions
from students.api_clients import api_client_admit, api_client_for_token, seconds_to_next_window
from students.audit import access_log
from students.errors import ServiceError
from students.models import AccessEvent, ApiClient, Student
from students.services import roster_import

from .models import Campaign, Checklist, Flag

PAGE_SIZE = 500


class RateLimited(Exception):
    pass


class ClientToken(HttpBearer):
    def authenticate(self, request, token):
        client = api_client_for_token(token)
        if client is None:
            return None
        if not api_client_admit(client):
            raise RateLimited
        request.user = client.account
        request.api_client = client
        return client


class LocalSwagger(Swagger):
    """Swagger UI from ninja's own static files, not a CDN.  ninja renders ``template_cdn`` unless
    "ninja" is an installed app; it is not (it cost every process ~0.5 s of imports), and its
    templates and static files are found by path instead (settings.NINJA_DIR)."""

    template_cdn = str(ABS_TPL_PATH / "swagger.html")


api = NinjaAPI(
    title="Roll Check API",
    version="1",
    description="学籍核对 · read campaigns, progress, checklists, flags and corrections; import rosters; "
    "update contact details.  Scoped like the client's role; ID numbers masked unless the client may reveal them.",
    urls_namespace="api-v1",
    auth=ClientToken(),
    docs=LocalSwagger(),
)


@api.exception_handler(RateLimited)
def _rate_limited(request, exc):
    response = api.create_response(request, {"detail": "rate limit exceeded"}, status=429)
    response["Retry-After"] = str(seconds_to_next_window())
    return response


@api.exception_handler(Http404)
def _not_found(request, exc):
    return api.create_response(request, {"detail": "not found"}, status=404)


@api.exception_handler(ServiceError)
def _refused(request, exc):
    return api.create_response(request, {"detail": str(exc)}, status=400)


def _client(request) -> ApiClient:
    return request.auth


def _log(request, *, rows=None, student=None, action=AccessEvent.Action.API_CALL, detail=""):
    access_log(
        request,
        action,
        student=student,
        target=f"{request.method} {request.path}",
        detail=f"{_client(request).name}{' · ' + detail if detail else ''}",
        rows=rows,
    )


def _id_number(request, student: Student) -> str:
    field = roll_fields.BY_KEY["id_number"]
    return field.display(student.id_number, masked=not _client(request).can_reveal)


# ----------------------------------------------------------------------------
# Schemas
# ----------------------------------------------------------------------------


class CampaignOut(Schema):
    id: int
    name: str
    kind: str
    opens_at: datetime.datetime
    closes_at: datetime.datetime
    closed: bool


class ProgressRow(Schema):
    id: int | None
    name: str
    total: int
    by_state: dict[str, int]


class ChecklistOut(Schema):
    student_number: str
    name: str
    department: str
    class_name: str
    id_number: str
    state: str
    finished_at: datetime.datetime | None


class FlagEventOut(Schema):
    action: str
    from_status: str
    to_status: str
    at: datetime.datetime
    note: str


class FlagOut(Schema):
    id: int
    student_number: str
    field: str
    field_label: str
    recorded_value: str
    claimed_value: str
    status: str
    created_at: datetime.datetime
    history: list[FlagEventOut]


class ContactIn(Schema):
    student_number: str
    phone: str | None = None
    email: str | None = None


class ImportReportOut(Schema):
    created: int
    updated: int
    unchanged: int
    errors: list[dict]
    warnings: list[dict]
    ignored_columns: list[str]


# ----------------------------------------------------------------------------
# Reads
# ----------------------------------------------------------------------------

router = Router(tags=["campaigns"])


def _campaign(campaign_id: int) -> Campaign:
    return get_object_or_404(Campaign, pk=campaign_id)


def _checklists(request, campaign: Campaign):
    return Checklist.objects.filter(campaign=campaign, student__in=permissions.students_for(request.user))


@router.get("/campaigns", response=list[CampaignOut])
def campaigns(request):
    rows = [
        CampaignOut(
            id=c.pk, name=c.name, kind=c.kind, opens_at=c.opens_at, closes_at=c.closes_at, closed=bool(c.closed_at)
        )
        for c in Campaign.objects.order_by("-opens_at")
    ]
    _log(request, rows=len(rows))
    return rows


@router.get("/campaigns/{campaign_id}/progress", response=list[ProgressRow])
def progress(request, campaign_id: int, by: str = "department"):
    """Checklist counts by state, per department (``by=department``) or per class (``by=class``)."""
    campaign = _campaign(campaign_id)
    group = {
        "department": ("student__department_id", "student__department__name"),
        "class": (
            "student__class_group_id",
            "student__class_group__name",
        ),
    }.get(by)
    if group is None:
        raise ServiceError("by must be department or class")
    counts: dict = {}
    for key, name, state, n in (
        _checklists(request, campaign).values_list(*group, "state").annotate(n=Count("id")).order_by(*group)
    ):
        row = counts.setdefault(key, {"id": key, "name": name or "", "total": 0, "by_state": {}})
        row["by_state"][state] = n
        row["total"] += n
    _log(request, rows=len(counts))
    return list(counts.values())


@router.get("/campaigns/{campaign_id}/checklists", response=list[ChecklistOut])
def checklists(request, campaign_id: int, state: str = "", department: int | None = None, page: int = 1):
    """Students' checklist states, ``PAGE_SIZE`` a page, ordered by 学号."""
    campaign = _campaign(campaign_id)
    rows = _checklists(request, campaign).select_related("student__department")
    if state:
        rows = rows.filter(state=state)
    if department is not None:
        rows = rows.filter(student__department_id=department)
    start = (max(page, 1) - 1) * PAGE_SIZE
    rows = list(rows.order_by("student__student_number")[start : start + PAGE_SIZE])
    out = [
        ChecklistOut(
            student_number=c.student.student_number,
            name=c.student.name,
            department=c.student.department.name,
            class_name=c.student.class_name,
            id_number=_id_number(request, c.student),
            state=c.state,
            finished_at=c.finished_at,
        )
        for c in rows
    ]
    _log(request, rows=len(out))
    if _client(request).can_reveal and out:
        _log(request, rows=len(out), action=AccessEvent.Action.ID_REVEAL, detail="API")
    return out


def _flags(request, campaign: Campaign, statuses=None):
    flags = (
        Flag.objects.filter(checklist__in=_checklists(request, campaign))
        .select_related("checklist__student")
        .prefetch_related("events")
        .order_by("created_at", "pk")
    )
    return flags.filter(status__in=statuses) if statuses else flags


def _flag_out(request, flag: Flag) -> FlagOut:
    field = flag.field
    masked = not _client(request).can_reveal
    return FlagOut(
        id=flag.pk,
        student_number=flag.checklist.student.student_number,
        field=field.code,
        field_label=str(field.label),
        recorded_value=field.display(flag.recorded_value, masked=masked),
        claimed_value=field.display(flag.claimed_value, masked=masked),
        status=flag.status,
        created_at=flag.created_at,
        history=[
            FlagEventOut(
                action=e.action, from_status=e.from_status, to_status=e.to_status, at=e.created_at, note=e.note
            )
            for e in flag.events.all()
        ],
    )


@router.get("/campaigns/{campaign_id}/flags", response=list[FlagOut])
def flags(request, campaign_id: int, status: str = ""):
    """Flags with their history."""
    out = [_flag_out(request, f) for f in _flags(request, _campaign(campaign_id), [status] if status else None)]
    _log(request, rows=len(out))
    return out


@router.get("/campaigns/{campaign_id}/corrections", response=list[FlagOut])
def corrections(request, campaign_id: int):
    """Flags waiting for a correction on CHSI (forwarded, accepted, submitted to CHSI)."""
    out = [_flag_out(request, f) for f in _flags(request, _campaign(campaign_id), Flag.PENDING_CORRECTION)]
    _log(request, rows=len(out))
    return out


# ----------------------------------------------------------------------------
# Writes
# ----------------------------------------------------------------------------

writes = Router(tags=["writes"])


def _require_write(request, capability: str, obj=None):
    if not _client(request).can_write or not permissions.has_capability(request.user, capability, obj):
        raise Http404


@writes.post("/rosters", response={200: ImportReportOut, 422: ImportReportOut})
def roster_upload(request, file: File[UploadedFile], dry_run: Form[bool] = False, source: Form[str] = ""):
    """Import a roster file (any format the upload page takes): all rows or none, the same report as the command."""
    _require_write(request, "roster.import")
    if file.size > settings.ROSTER_MAX_UPLOAD_BYTES:
        raise ServiceError("file too large")
    os.makedirs(settings.PRIVATE_ROOT, exist_ok=True)
    handle, path = tempfile.mkstemp(dir=settings.PRIVATE_ROOT, suffix=".roster")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in file.chunks():
                out.write(chunk)
        report = roster_import(
            path=path, file_name=os.path.basename(file.name or "api"), imported_by=request.user, dry_run=dry_run,
            source=source.strip() or None,
        )  # fmt: skip
    finally:
        os.unlink(path)
    access_log(
        request,
        AccessEvent.Action.ROSTER_IMPORT,
        target=os.path.basename(file.name or "api"),
        detail=f"API {_client(request).name} #{report.roster_import_id}",
    )
    return Status(422 if report.errors else 200, report.as_dict())


@writes.patch("/students/contact")
def contact_update(request, payload: ContactIn):
    """Update a student's phone number or e-mail address (used for reminders).

    The 学号 travels in the body, never in the URL: URLs end up in proxy logs.
    """
    student = get_object_or_404(permissions.students_for(request.user), student_number=payload.student_number)
    _require_write(request, "student.record_for", student)
    from students.services import contact_update as update

    update(student=student, phone=payload.phone, email=payload.email, by=request.user)
    _log(request, student=student, detail="contact")
    return {"student_number": student.student_number, "updated": True}


api.add_router("/", router)
api.add_router("/", writes)
