"""Workspaces of department secretaries and registrar staff."""

from collections import defaultdict

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from notices import services as notice_services
from students import fields as roll_fields
from students.audit import access_log
from students.models import AccessEvent, ImportFinding
from students.permissions import (
    classes_for,
    departments_for,
    get_student_for,
    is_registrar,
    registrar_required,
    staff_required,
)

from .. import dashboards, selectors, services
from ..forms import FlagForm
from ..models import Checklist, ClassProgressLink, Flag

S = Flag.Status
SORTS = {
    "class": lambda row: (row[0].department.name, row[0].pk is None, row[0].name),
    "completion": lambda row: (row[1].completion, row[0].name),
    "-completion": lambda row: (-row[1].completion, row[0].name),
    "not_done": lambda row: (-row[1].not_done, row[0].name),
    "flagged": lambda row: (-row[1].flagged, row[0].name),
    "overdue": lambda row: (-row[1].overdue, row[0].name),
}


def _campaign_or_none(request):
    campaign_id = request.GET.get("campaign") or request.POST.get("campaign")
    if campaign_id and not str(campaign_id).isdigit():
        raise Http404
    return selectors.campaign_for_workspace(campaign_id)


def _back(request, fallback):
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(fallback)


# ---------------------------------------------------------------------------
# Department dashboard and class pages
# ---------------------------------------------------------------------------


@never_cache
@staff_required
def dashboard(request):
    campaign = _campaign_or_none(request)
    departments = departments_for(request.user)
    department_id = request.GET.get("department")
    if department_id:
        if not department_id.isdigit():
            raise Http404
        departments = departments.filter(pk=department_id)
        if not departments.exists():
            raise Http404
    context = {"campaign": campaign, "campaigns": selectors.campaign_list(), "department_id": department_id}
    if campaign:
        rows, total = dashboards.class_progress(campaign=campaign, departments=departments)
        sort = request.GET.get("sort", "class")
        rows.sort(key=SORTS.get(sort, SORTS["class"]))
        per_department = defaultdict(dashboards.Counts)
        for class_group, counts in rows:
            for state, n in counts.by_state.items():
                per_department[class_group.department.name].add(state, n)
        context.update(rows=rows, total=total, sort=sort, per_department=sorted(per_department.items()))
        notice, read_rates = notice_services.latest_notice_read_rates(
            campaign=campaign, viewer=request.user, group="class"
        )
        names = set(departments.values_list("name", flat=True))
        context.update(notice=notice, read_rates=[row for row in read_rates if row["department"] in names])
    return render(request, "workspace/dashboard.html", context)


@never_cache
@staff_required
def class_detail(request, class_id):
    class_group = get_object_or_404(classes_for(request.user).select_related("department"), pk=class_id)
    campaign = _campaign_or_none(request)
    only_not_done = request.GET.get("filter") == "not_done"
    context = {"class_group": class_group, "campaign": campaign, "only_not_done": only_not_done}
    if campaign:
        context["checklists"] = selectors.class_checklists(
            campaign=campaign, class_group=class_group, only_not_done=only_not_done
        )
        # An expired link no longer opens: do not offer it to post in the class group.
        context["links"] = ClassProgressLink.objects.filter(
            campaign=campaign, class_group=class_group, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
    return render(request, "workspace/class_detail.html", context)


@require_POST
@staff_required
def progress_link_create(request, class_id):
    class_group = get_object_or_404(classes_for(request.user), pk=class_id)
    campaign = _campaign_or_none(request)
    if campaign is None:
        raise Http404
    link = services.progress_link_create(campaign=campaign, class_group=class_group, by=request.user)
    messages.success(
        request,
        _("已生成班级进度链接，有效期至 %(date)s，可发到班级群。") % {"date": f"{link.expires_at:%Y-%m-%d}"},
    )
    return redirect(f"{reverse('workspace:class_detail', args=[class_group.pk])}?campaign={campaign.pk}")


@require_POST
@staff_required
def progress_link_revoke(request, link_id):
    link = get_object_or_404(ClassProgressLink.objects.filter(class_group__in=classes_for(request.user)), pk=link_id)
    services.progress_link_revoke(link=link)
    messages.success(request, _("链接已撤销，群里的旧链接将无法打开。"))
    return redirect(f"{reverse('workspace:class_detail', args=[link.class_group_id])}?campaign={link.campaign_id}")


@never_cache
def progress_public(request, token):
    """The class progress page behind a shared link: counts and names of who is not done."""
    link = ClassProgressLink.objects.select_related("class_group", "campaign").filter(token=token).first()
    if link is None or not link.is_valid():
        raise Http404
    checklists = Checklist.objects.filter(campaign=link.campaign, student__class_group=link.class_group)
    counts = dashboards.counts_of(checklists)
    pending = checklists.exclude(state__in=Checklist.FINISHED).order_by("student__student_number")
    response = render(
        request,
        "workspace/progress_public.html",
        {"link": link, "counts": counts, "names": pending.values_list("student__name", flat=True)},
    )
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


# ---------------------------------------------------------------------------
# Review queue (department) and correction queue (registrar)
# ---------------------------------------------------------------------------

REVIEW_ACTIONS = {"forward": S.FORWARDED, "return": S.RETURNED}
CORRECTION_ACTIONS = {
    "accept": S.ACCEPTED,
    "chsi_submitted": S.SUBMITTED_TO_CHSI,
    "corrected": S.CORRECTED,
    "return": S.RETURNED,
}


def _flag_rows(flags):
    flags = list(flags)
    findings = selectors.findings_for_students({f.checklist.student_id for f in flags})
    return [
        {
            "flag": flag,
            "field": flag.field,
            "findings": findings.get(flag.checklist.student_id, []),
            "recorded": _masked_for_staff(flag.field_code, flag.recorded_value),
            "claimed": _masked_for_staff(flag.field_code, flag.claimed_value),
        }
        for flag in flags
    ]


def _masked_for_staff(code, value):
    from students.idnumbers import mask

    return mask(value) if code == "SFZH" else value


@never_cache
@staff_required
def review_queue(request):
    status = request.GET.get("status", S.SUBMITTED)
    if status not in S.values:
        raise Http404
    department_id = request.GET.get("department")
    if department_id and not department_id.isdigit():
        raise Http404
    flags = selectors.review_queue(user=request.user, statuses=[status], department_id=department_id or None)
    page = Paginator(flags, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "workspace/review_queue.html",
        {
            "page": page,
            "rows": _flag_rows(page.object_list),
            "status": status,
            "statuses": S.choices,
            "departments": departments_for(request.user),
            "department_id": department_id,
        },
    )


def _act(request, flag_ids, action, actions):
    note = request.POST.get("note", "")
    if action == "note":
        # Every flag is looked up first: one out of scope is a 404 before any note is written.
        flags = [selectors.flag_for_staff(user=request.user, flag_id=flag_id) for flag_id in flag_ids]
        for flag in flags:
            try:
                services.flag_note(flag_id=flag.pk, by=request.user, note=note)
            except services.VerificationError as exc:
                messages.error(request, str(exc))
                return
        messages.success(request, _("已添加备注。"))
        return
    if action not in actions:
        messages.error(request, _("请选择操作。"))
        return
    moved, refused = services.flags_transition_bulk(flag_ids=flag_ids, to=actions[action], by=request.user, note=note)
    if moved:
        messages.success(request, ngettext("已处理 %(n)s 条报错。", "已处理 %(n)s 条报错。", moved) % {"n": moved})
    for message in refused:
        messages.error(request, message)


def _flag_ids(request) -> list[int]:
    ids = [value for value in request.POST.getlist("flags") if value.isdigit()]
    return [int(value) for value in ids]


@require_POST
@staff_required
def review_act(request):
    flag_ids = _flag_ids(request)
    if not flag_ids:
        messages.error(request, _("请至少选择一条报错。"))
    else:
        _act(
            request,
            flag_ids,
            request.POST.get("action"),
            REVIEW_ACTIONS if not is_registrar(request.user) else {**REVIEW_ACTIONS, **CORRECTION_ACTIONS},
        )
    return _back(request, reverse("workspace:review_queue"))


@never_cache
@registrar_required
def correction_queue(request):
    statuses = [S.FORWARDED, S.ACCEPTED, S.SUBMITTED_TO_CHSI]
    status = request.GET.get("status")
    if status:
        if status not in statuses:
            raise Http404
        statuses = [status]
    rows = _flag_rows(selectors.review_queue(user=request.user, statuses=statuses))
    groups = {roll_fields.Authority.SCHOOL: [], roll_fields.Authority.PROVINCE: [], roll_fields.Authority.NONE: []}
    for row in rows:
        groups[row["field"].authority].append(row)
    return render(
        request,
        "workspace/corrections.html",
        {
            "groups": [(roll_fields.Authority(key).label, key, items) for key, items in groups.items() if items],
            "status": status,
            "statuses": [(s, S(s).label) for s in (S.FORWARDED, S.ACCEPTED, S.SUBMITTED_TO_CHSI)],
        },
    )


# ---------------------------------------------------------------------------
# A student's record, seen by staff, and answers recorded on their behalf
# ---------------------------------------------------------------------------


@never_cache
@staff_required
def student_record(request, student_id):
    student = get_student_for(request.user, pk=student_id)
    access_log(request, AccessEvent.Action.RECORD_VIEW, student=student, target=student.student_number)
    campaign = _campaign_or_none(request)
    checklist = Checklist.objects.filter(campaign=campaign, student=student).select_related("campaign").first()
    if checklist:
        checklist.student = student
    context = {
        "student": student,
        "campaign": campaign,
        "checklist": checklist,
        "rows": selectors.checklist_rows(checklist, own=False) if checklist else [],
        "findings": student.findings.all(),
    }
    return render(request, "workspace/student_record.html", context)


@require_POST
@staff_required
def proxy_confirm_all(request, student_id):
    student = get_student_for(request.user, pk=student_id)
    checklist = get_object_or_404(Checklist, campaign=_campaign_or_none(request), student=student)
    if request.POST.get("attest") != "on":
        messages.error(request, _("请确认学生已在纸质登记表上签字。"))
    else:
        try:
            services.checklist_confirm_all(
                checklist_id=checklist.pk,
                record_version=request.POST.get("record_version"),
                by=request.user,
                proxy=True,
            )
        except services.VerificationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("已代为登记：全部正确。"))
    return redirect(f"{reverse('workspace:student_record', args=[student.pk])}?campaign={checklist.campaign_id}")


@never_cache
@staff_required
def proxy_flag(request, student_id, field_code):
    student = get_student_for(request.user, pk=student_id)
    campaign = _campaign_or_none(request)
    checklist = get_object_or_404(Checklist.objects.select_related("campaign"), campaign=campaign, student=student)
    field = next((f for f in checklist.campaign.checked_fields() if f.code == field_code), None)
    if field is None:
        raise Http404
    # A paper form with the student's signature is the evidence here; files stay optional.
    form = FlagForm(
        request.POST or None,
        request.FILES or None,
        initial={"record_version": student.version},
        field=field,
        id_type=student.id_type,
        needs_evidence=False,
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.field_flag(
                checklist_id=checklist.pk,
                field_code=field.code,
                claimed_value=form.cleaned_data["claimed_value"],
                explanation=form.cleaned_data["explanation"],
                record_version=form.cleaned_data["record_version"],
                by=request.user,
                proxy=True,
            )
        except services.VerificationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("已代为登记“%(label)s”的报错。") % {"label": field.label})
            return redirect(f"{reverse('workspace:student_record', args=[student.pk])}?campaign={campaign.pk}")
    return render(
        request,
        "workspace/proxy_flag.html",
        {"student": student, "campaign": campaign, "field": field, "form": form},
    )


# ---------------------------------------------------------------------------
# Registrar: school dashboard and data quality
# ---------------------------------------------------------------------------


@never_cache
@registrar_required
def school(request):
    campaign = _campaign_or_none(request)
    context = {"campaign": campaign, "campaigns": selectors.campaign_list()}
    if campaign:
        rows, cohorts, total = dashboards.school_progress(campaign=campaign)
        days = dashboards.daily_progress(campaign=campaign, total=total.total)
        context.update(rows=rows, total=total, cohorts=cohorts, chart=dashboards.progress_chart(days), days=days)
        notice, read_rates = notice_services.latest_notice_read_rates(
            campaign=campaign, viewer=request.user, group="department"
        )
        context.update(notice=notice, read_rates=read_rates)
    return render(request, "workspace/school.html", context)


@never_cache
@registrar_required
def findings(request):
    items = ImportFinding.objects.select_related("student__department", "student__class_group").order_by(
        "student__department__name", "student__student_number", "field_code"
    )
    department_id, kind = request.GET.get("department"), request.GET.get("kind")
    if department_id:
        if not department_id.isdigit():
            raise Http404
        items = items.filter(student__department_id=department_id)
    if kind:
        items = items.filter(kind=kind)
    page = Paginator(items, 100).get_page(request.GET.get("page"))
    return render(
        request,
        "workspace/findings.html",
        {
            "page": page,
            "kinds": ImportFinding.Kind.choices,
            "kind": kind,
            "departments": departments_for(request.user),
            "department_id": department_id,
        },
    )
