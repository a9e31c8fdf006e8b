import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.messages import get_messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from students import fields as roll_fields
from students.audit import access_log
from students.downloads import private_file_response
from students.models import AccessEvent
from students.permissions import capability_required, own_student

from .. import campaign_kinds, helpdesk, selectors, services, signals
from .. import evidence as evidence_files
from ..forms import (
    SUPPORT_KINDS,
    CampaignForm,
    ConfirmAllForm,
    ConfirmRestForm,
    FlagForm,
    SupportRequestForm,
    VersionedForm,
)
from ..models import Campaign, Checklist, Flag


def _checklist_url(checklist, field_code=None):
    url = reverse("verification:checklist", args=[checklist.campaign_id])
    return f"{url}#field-{field_code}" if field_code else url


@login_required
def my_checks(request):
    """The student's home: panels (unread notices first), then their checks; straight to the one open check if
    no panel holds the student here."""
    checklists = list(selectors.checklists_of_user(user=request.user))
    student = own_student(request.user)
    # Apps built on verification add their panels (notices: the student's notices) through a signal.
    responses = signals.student_home.send(my_checks, request=request, student=student)
    panels = [panel for _receiver, panel in responses if panel]
    open_ones = [c for c in checklists if c.is_open()]
    if len(open_ones) == 1 and len(checklists) == 1 and not any(panel.holds for panel in panels):
        return redirect("verification:checklist", campaign_id=open_ones[0].campaign_id)
    return render(
        request, "verification/my_checks.html", {"checklists": checklists, "panels": panels, "student": student}
    )


@never_cache
@login_required
def checklist(request, campaign_id):
    checklist = selectors.checklist_page_of_user(user=request.user, campaign_id=campaign_id)
    # The top bar's class-monitor check and unread count came with the checklist (registrar_portal/navigation.py).
    request.navigation_answers = getattr(checklist, "navigation_answers", None)
    return render(request, "verification/checklist.html", _checklist_context(request, checklist))


_PLAIN_ARGUMENT = re.compile(r"[A-Za-z0-9_-]+\Z").match


class _Addresses:
    """``reverse(url_name, args=args)`` for routes of int, str and slug arguments, from formats reversed once
    per URLconf and script prefix: each reverse() cost more than a row of the page (docs/performance.md §7)."""

    # Placeholders reversed in place of a route's arguments (an int converter needs digits).
    MARKS = ("7300000001", "7300000002")
    _formats: dict[tuple, dict[str, str]] = {}

    def __init__(self):
        key = (get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())
        self.formats = self._formats.setdefault(key, {})

    def __call__(self, url_name: str, *args) -> str:
        texts = [str(arg) for arg in args]
        if not all(map(_PLAIN_ARGUMENT, texts)):
            return reverse(url_name, args=args)  # anything reverse() would quote or refuse
        template = self.formats.get(url_name)
        if template is None:
            marks = self.MARKS[: len(args)]
            template = reverse(url_name, args=marks).replace("{", "{{").replace("}", "}}")
            for index, mark in enumerate(marks):
                template = template.replace(mark, f"{{{index}}}")
            self.formats[url_name] = template
        return template.format(*texts)


def _checklist_context(request, checklist) -> dict:
    student = checklist.student
    rows = selectors.own_checklist_rows(checklist)
    # A message about one field is shown in its row (extra_tags "at-field-<code>").
    at_field = {}
    for message in get_messages(request):
        at_field.setdefault(message.extra_tags, []).append(message)
    campaign_id, _address = checklist.campaign_id, _Addresses()
    # Field codes are the registry's (letters): each row's addresses from one format.
    confirm_url = _address("verification:field_confirm", campaign_id, "CODE")
    flag_url = _address("verification:field_flag", campaign_id, "CODE")
    for row in rows:
        code = row["code"]
        row["confirm_url"] = confirm_url.replace("/CODE/", f"/{code}/")
        row["flag_url"] = flag_url.replace("/CODE/", f"/{code}/")
        row["messages"] = at_field.get(_at_field(code), ())
        if row["photo"]:
            photo = row["photo"]
            url = _address("students:photo", student.pk, photo["kind"])
            photo["src"] = f"{url}?v={photo['photo'].sha256[:12]}"
        if row["flag"]:
            row["flag_detail_url"] = _address("verification:flag_detail", row["flag"].pk)
    return {
        "checklist": checklist,
        "campaign": checklist.campaign,
        "student": student,
        "rows": rows,
        # Once a field is flagged, 全部正确 no longer applies: offer to confirm the fields not yet answered.
        "flagged": any(row["flagged"] for row in rows),
        "rest_count": sum(1 for row in rows if not row["flagged"] and not row["confirmed"]),
        "info_rows": selectors.info_rows(checklist),
        "missing_photos": selectors.missing_photos(checklist),
        "writable": checklist.is_open(),
        # After the students' deadline a returned flag may still be amended, until the departments' one.
        "amend_returned": checklist.returned_amendable(),
        "deadline": checklist.own_deadline(),
        "version": student.version,
        "urls": {
            "my_checks": _address("verification:my_checks"),
            "confirm_all": _address("verification:confirm_all", campaign_id),
            "confirm_rest": _address("verification:confirm_rest", campaign_id),
            "help_index": _address("notices:help_index"),
            "image_collection_code": _address("notices:help_article", "image-collection-code"),
        },
        "support_kinds": [
            {"label": kind.label, "url": _address("verification:support_request", campaign_id, kind.value)}
            for kind in SUPPORT_KINDS.values()
        ],
        "support_requests": helpdesk.tickets_of_checklist(checklist)
        if "tickets" in getattr(checklist, "holds", selectors.HOLDS)
        else [],
    }


def _is_htmx(request) -> bool:
    # Sent by htmx (the checklist's in-place answers); a request without it gets the whole page.
    return request.headers.get("HX-Request") == "true"


def _answered_row(request, campaign_id, field_code):
    """An in-place answer's response: the field's row, with the state badge and the confirm box swapped too."""
    checklist = selectors.checklist_page_of_user(user=request.user, campaign_id=campaign_id)
    context = _checklist_context(request, checklist)
    context["rows"] = [row for row in context["rows"] if row["code"] == field_code]
    context["oob"] = True
    return render(request, "verification/_check_answered.html", context)


def _at_field(field_code) -> str:
    """Tags a message to show next to its field: the checklist scrolls there, and on a phone the top is off-screen."""
    return f"at-field-{field_code}" if field_code else ""


def _say_if_finished(request, checklist, was_finished: bool, *, anchor=None):
    """The answer that completes the checklist says so: otherwise finishing passes without a word."""
    state = Checklist.objects.values_list("state", flat=True).get(pk=checklist.pk)
    if was_finished or state not in Checklist.FINISHED:
        return
    if state == Checklist.State.FLAGGED:
        text = _("你已核对完全部项目。报错的项目由院系审核，结果会通知你。")
    else:
        text = _("你已核对完全部项目，信息全部正确，感谢你的核对。")
    messages.success(request, text, extra_tags=_at_field(anchor))


def _service_call(request, checklist, fn, *, anchor=None, success=None, **kwargs):
    """Run one service, show its refusal (or ``success``) as a message, and go back to the checklist."""
    was_finished = checklist.is_finished
    try:
        fn(**kwargs)
    except services.VerificationError as exc:
        messages.error(request, str(exc), extra_tags=_at_field(anchor))
    else:
        if success:
            messages.success(request, success, extra_tags=_at_field(anchor))
        _say_if_finished(request, checklist, was_finished, anchor=anchor)
    return redirect(_checklist_url(checklist, anchor))


def _evidence_deleted_message(flag) -> str | None:
    """What withdrawing ``flag`` deletes, said before it is gone."""
    count = flag.evidence.count() if flag else 0
    if not count:
        return None
    return ngettext(
        "报错已撤回，你上传的 %(count)s 份证明材料已删除。",
        "报错已撤回，你上传的 %(count)s 份证明材料已删除。",
        count,
    ) % {"count": count}


@require_POST
@login_required
def field_confirm(request, campaign_id, field_code):
    checklist = selectors.checklist_of_user(user=request.user, campaign_id=campaign_id)
    _field_or_404(checklist, field_code)
    form = VersionedForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("页面已过期，请刷新后重试。"))
        url = _checklist_url(checklist)
        return HttpResponseClientRedirect(url) if _is_htmx(request) else redirect(url)
    open_flag = checklist.flags.filter(field_code=field_code, status__in=Flag.OPEN).first()
    response = _service_call(
        request,
        checklist,
        services.field_confirm,
        anchor=field_code,
        success=_evidence_deleted_message(open_flag if open_flag and open_flag.is_editable else None),
        field_code=field_code,
        checklist_id=checklist.pk,
        record_version=form.cleaned_data["record_version"],
        by=request.user,
    )
    # In place: the row answers (its message in it); the redirect is for a browser without JavaScript.
    return _answered_row(request, campaign_id, field_code) if _is_htmx(request) else response


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


@require_POST
@login_required
def confirm_rest(request, campaign_id):
    """其余全部正确: every field not flagged is confirmed; the flags stay as they are."""
    checklist = selectors.checklist_of_user(user=request.user, campaign_id=campaign_id)
    form = ConfirmRestForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(f"{_checklist_url(checklist)}#confirm-all")
    try:
        services.checklist_confirm_rest(
            checklist_id=checklist.pk, record_version=form.cleaned_data["record_version"], by=request.user
        )
    except services.VerificationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("已确认其余各项正确。报错的项目由院系审核，结果会通知你。"))
    return redirect(_checklist_url(checklist))


def _field_or_404(checklist, field_code) -> roll_fields.RollField:
    for field in checklist.checked_fields():
        if field.code == field_code:
            return field
    raise Http404


@never_cache
@login_required
def field_flag(request, campaign_id, field_code):
    checklist = selectors.checklist_of_user(user=request.user, campaign_id=campaign_id)
    field = _field_or_404(checklist, field_code)
    existing = checklist.flags.filter(field_code=field_code, status__in=Flag.OPEN).first()
    amending = existing is not None and existing.is_returned and checklist.returned_amendable()
    if not checklist.is_open() and not amending:
        messages.error(request, _("核对已截止，不能再修改"))
        url = _checklist_url(checklist, field_code)
        return HttpResponseClientRedirect(url) if _is_htmx(request) else redirect(url)
    student = checklist.student
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
        was_finished = checklist.is_finished
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
            messages.error(request, str(exc), extra_tags=_at_field(field_code))
            return redirect(_checklist_url(checklist, field_code))
        except services.VerificationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                _("已提交“%(label)s”的报错，院系审核后会通知你。") % {"label": field.label},
                extra_tags=_at_field(field_code),
            )
            _say_if_finished(request, checklist, was_finished, anchor=field_code)
            return redirect(_checklist_url(checklist, field_code))
    context = {
        "checklist": checklist,
        "field": field,
        "form": form,
        # The student's own value, in full: they are correcting it.
        "value": field.display(getattr(student, field.key), masked=False),
        "photo": selectors.photo_box(getattr(student, field.key)) if field.photo else None,
        "existing": existing,
        "evidence_checklist": field.evidence_guidance,
        "hints": [f.message for f in student.findings.filter(field_code=field.code)],
    }
    if _is_htmx(request) and request.method == "GET":
        # 有误 tapped on the checklist: the form opens inside the field's row; it posts as the page does.
        return render(request, "verification/_flag_form_card.html", {**context, "inline": True})
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
            "writable": flag.checklist.is_open() or (flag.is_returned and flag.checklist.returned_amendable()),
        },
    )


@require_POST
@login_required
def flag_withdraw(request, flag_id):
    flag = selectors.flag_of_user(user=request.user, flag_id=flag_id)
    return _service_call(
        request,
        flag.checklist,
        services.flag_withdraw,
        anchor=flag.field_code,
        success=_evidence_deleted_message(flag) or _("报错已撤回。"),
        flag_id=flag.pk,
        by=request.user,
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
    if not path.is_file():
        raise Http404
    access_log(
        request,
        AccessEvent.Action.EVIDENCE_DOWNLOAD,
        student=item.flag.checklist.student,
        target=f"{item.flag.field_code} #{item.flag_id}",
        detail=item.original_name,
    )
    return private_file_response(path, filename=item.original_name, content_type=item.content_type)


# ---------------------------------------------------------------------------
# Campaign management (registrar staff)
# ---------------------------------------------------------------------------


@capability_required("campaign.manage")
def campaign_list(request):
    return render(
        request,
        "verification/campaign_list.html",
        {"campaigns": selectors.campaign_list(), "retention_days": settings.RETENTION_DAYS},
    )


@capability_required("campaign.manage")
def campaign_edit(request, campaign_id=None):
    campaign = get_object_or_404(Campaign, pk=campaign_id) if campaign_id else None
    # A new campaign starts from its kind's fields and calendar (?kind=graduating: April deadline).
    initial = None if campaign else campaign_kinds.form_initial(request.GET.get("kind", ""))
    form = CampaignForm(request.POST or None, instance=campaign, initial=initial)
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
