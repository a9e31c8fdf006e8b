from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from notices import services as notice_services
from students import fields as roll_fields
from students.audit import access_log
from students.models import AccessEvent
from students.permissions import own_student, registrar_required

from .. import evidence as evidence_files
from .. import selectors, services
from ..forms import SUPPORT_KINDS, CampaignForm, ConfirmAllForm, FlagForm, SupportRequestForm, VersionedForm
from ..models import Campaign, Flag

# DOMAIN.md §6.3: what to bring for each identity correction.
EVIDENCE_CHECKLIST = {
    "XM": gettext_lazy("户口簿本人页、身份证，以及公安机关出具的姓名变更证明（现用名/曾用名）"),
    "XB": gettext_lazy("户口簿本人页和身份证"),
    "CSRQ": gettext_lazy("户口簿、身份证、《医学出生证明》"),
    "SFZH": gettext_lazy("户口簿、身份证，以及户口所在地公安机关出具的户籍证明或公民身份号码变更证明"),
    "MZ": gettext_lazy("户口簿本人页和公安机关出具的民族证明"),
}


def _checklist_url(checklist, field_code=None):
    url = reverse("verification:checklist", args=[checklist.campaign_id])
    return f"{url}#field-{field_code}" if field_code else url


@login_required
def my_checks(request):
    """The student's home: unread notices first, then their checks (straight to the one open check if all is read)."""
    checklists = list(selectors.checklists_of_user(user=request.user))
    student = own_student(request.user)
    notices = notice_services.notices_with_read_flag(student=student, user=request.user) if student else []
    open_ones = [c for c in checklists if c.campaign.is_open()]
    if len(open_ones) == 1 and len(checklists) == 1 and all(n.is_read for n in notices):
        return redirect("verification:checklist", campaign_id=open_ones[0].campaign_id)
    return render(
        request, "verification/my_checks.html", {"checklists": checklists, "notices": notices, "student": student}
    )


@never_cache
@login_required
def checklist(request, campaign_id):
    checklist = selectors.checklist_of_user(user=request.user, campaign_id=campaign_id)
    student = checklist.student
    context = {
        "checklist": checklist,
        "campaign": checklist.campaign,
        "student": student,
        "rows": selectors.checklist_rows(checklist),
        "info_rows": selectors.info_rows(checklist),
        "writable": checklist.campaign.is_open(),
        "confirm_all_form": ConfirmAllForm(initial={"record_version": student.version}),
        "version": student.version,
        "support_kinds": SUPPORT_KINDS.values(),
        "support_requests": checklist.support_requests.all(),
    }
    return render(request, "verification/checklist.html", context)


def _service_call(request, checklist, fn, *, anchor=None, **kwargs):
    """Run one service, show its refusal as a message, and go back to the checklist."""
    try:
        fn(**kwargs)
    except services.VerificationError as exc:
        messages.error(request, str(exc))
    return redirect(_checklist_url(checklist, anchor))


@require_POST
@login_required
def field_confirm(request, campaign_id, field_code):
    checklist = selectors.checklist_of_user(user=request.user, campaign_id=campaign_id)
    _field_or_404(checklist, field_code)
    form = VersionedForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("页面已过期，请刷新后重试。"))
        return redirect(_checklist_url(checklist))
    return _service_call(
        request,
        checklist,
        services.field_confirm,
        anchor=field_code,
        field_code=field_code,
        checklist_id=checklist.pk,
        record_version=form.cleaned_data["record_version"],
        by=request.user,
    )


@require_POST
@login_required
def confirm_all(request, campaign_id):
    checklist = selectors.checklist_of_user(user=request.user, campaign_id=campaign_id)
    form = ConfirmAllForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(_checklist_url(checklist))
    try:
        services.checklist_confirm_all(
            checklist_id=checklist.pk, record_version=form.cleaned_data["record_version"], by=request.user
        )
    except services.VerificationError as exc:
        messages.error(request, str(exc))
    else:
        # Thank the student only when this request confirmed everything: a refused
        # request on an already finished (flagged) checklist must not read as success.
        messages.success(request, _("已确认全部信息正确，感谢你的核对。"))
    return redirect(_checklist_url(checklist))


def _field_or_404(checklist, field_code) -> roll_fields.RollField:
    for field in checklist.campaign.checked_fields():
        if field.code == field_code:
            return field
    raise Http404


@never_cache
@login_required
def field_flag(request, campaign_id, field_code):
    checklist = selectors.checklist_of_user(user=request.user, campaign_id=campaign_id)
    field = _field_or_404(checklist, field_code)
    if not checklist.campaign.is_open():
        messages.error(request, _("核对已截止，不能再修改"))
        return redirect(_checklist_url(checklist, field_code))
    student = checklist.student
    existing = checklist.flags.filter(field_code=field_code, status__in=Flag.OPEN).first()
    kwargs = {"field": field, "id_type": student.id_type, "needs_evidence": field.evidence}
    initial = {"record_version": student.version}
    if existing:
        initial.update(
            claimed_value=existing.claimed_value,
            explanation=existing.explanation,
            has_evidence=existing.evidence.exists(),
        )
    form = FlagForm(request.POST or None, request.FILES or None, initial=initial, **kwargs)
    if request.method == "POST" and form.is_valid():
        try:
            services.field_flag(
                checklist_id=checklist.pk,
                field_code=field_code,
                claimed_value=form.cleaned_data["claimed_value"],
                explanation=form.cleaned_data["explanation"],
                files=form.cleaned_data.get("evidence") or [],
                record_version=form.cleaned_data["record_version"],
                by=request.user,
            )
        except services.StaleRecordError as exc:
            messages.error(request, str(exc))
            return redirect(_checklist_url(checklist, field_code))
        except services.VerificationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("已提交“%(label)s”的报错，院系审核后会通知你。") % {"label": field.label})
            return redirect(_checklist_url(checklist, field_code))
    context = {
        "checklist": checklist,
        "field": field,
        "form": form,
        "value": field.display(getattr(student, field.key)),
        "existing": existing,
        "evidence_checklist": EVIDENCE_CHECKLIST.get(field.code),
        "hints": [f.message for f in student.findings.filter(field_code=field.code)],
    }
    return render(request, "verification/flag_form.html", context)


@never_cache
@login_required
def flag_detail(request, flag_id):
    flag = selectors.flag_of_user(user=request.user, flag_id=flag_id)
    return render(
        request,
        "verification/flag_detail.html",
        {
            "flag": flag,
            "events": flag.events.select_related("actor"),
            "evidence": flag.evidence.all(),
            "writable": flag.checklist.campaign.is_open(),
        },
    )


@require_POST
@login_required
def flag_withdraw(request, flag_id):
    flag = selectors.flag_of_user(user=request.user, flag_id=flag_id)
    return _service_call(
        request, flag.checklist, services.flag_withdraw, anchor=flag.field_code, flag_id=flag.pk, by=request.user
    )


@never_cache
@login_required
def support_request(request, campaign_id, kind):
    checklist = selectors.checklist_of_user(user=request.user, campaign_id=campaign_id)
    if kind not in SUPPORT_KINDS:
        raise Http404
    form = SupportRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.support_request_create(
                checklist_id=checklist.pk, kind=kind, note=form.cleaned_data["note"], by=request.user
            )
        except services.VerificationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("已告知学籍科，我们会尽快联系你。"))
        return redirect(_checklist_url(checklist))
    return render(
        request,
        "verification/support_request.html",
        {"checklist": checklist, "kind": SUPPORT_KINDS[kind], "form": form},
    )


@never_cache
@login_required
def evidence_download(request, evidence_id):
    item = selectors.evidence_for_viewer(user=request.user, evidence_id=evidence_id)
    path = evidence_files.path_of(item.storage_name)
    if not path.exists():
        raise Http404
    access_log(
        request,
        AccessEvent.Action.EVIDENCE_DOWNLOAD,
        student=item.flag.checklist.student,
        target=f"{item.flag.field_code} #{item.flag_id}",
        detail=item.original_name,
    )
    response = FileResponse(
        open(path, "rb"), as_attachment=True, filename=item.original_name, content_type=item.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# ---------------------------------------------------------------------------
# Campaign management (registrar staff)
# ---------------------------------------------------------------------------


@registrar_required
def campaign_list(request):
    return render(
        request,
        "verification/campaign_list.html",
        {"campaigns": selectors.campaign_list(), "retention_days": settings.RETENTION_DAYS},
    )


@registrar_required
def campaign_edit(request, campaign_id=None):
    campaign = get_object_or_404(Campaign, pk=campaign_id) if campaign_id else None
    form = CampaignForm(request.POST or None, instance=campaign)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.campaign_save(
                campaign=form.save(commit=False), cohorts=form.cleaned_data["cohorts"], by=request.user
            )
        except services.VerificationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("已保存“%(name)s”。") % {"name": saved.name})
            return redirect("verification:campaign_list")
    return render(request, "verification/campaign_form.html", {"form": form, "campaign": campaign})
