"""Workspaces of department secretaries and registrar staff."""

from collections import defaultdict

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import prefetch_related_objects
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from students import fields as roll_fields
from students.audit import access_log
from students.forms import parse_id
from students.models import AccessEvent, ImportFinding
from students.permissions import (
    capability_required,
    classes_for,
    departments_for,
    get_department_for,
    get_student_for,
    has_capability,
    is_counsellor,
)

from .. import dashboards, helpdesk, selectors, services
from ..filters import CorrectionFilter, FindingFilter
from ..forms import (
    ExclusionForm,
    ExtensionForm,
    FlagForm,
    FlagPickForm,
    InclusionForm,
    ProxyConfirmAllForm,
    SignOffForm,
    SignOffWithdrawForm,
    WorkspaceQueryForm,
)
from ..models import Checklist, ClassProgressLink, DepartmentSignOff, Flag

S = Flag.Status
SORTS = {
    "class": lambda row: (row[0].department.name, row[0].pk is None, row[0].name),
    "completion": lambda row: (row[1].completion, row[0].name),
    "-completion": lambda row: (-row[1].completion, row[0].name),
    "not_done": lambda row: (-row[1].not_done, row[0].name),
    "flagged": lambda row: (-row[1].flagged, row[0].name),
    "overdue": lambda row: (-row[1].overdue, row[0].name),
}


def _query(request, data=None) -> dict:
    """The page's query string, read by a form: a value that cannot be read is "not found"."""
    form = WorkspaceQueryForm(request.GET if data is None else data)
    if not form.is_valid():
        raise Http404
    return form.cleaned_data


def _dashboard_query(request) -> dict:
    """``_query``'s campaign and department, read as its form reads them (``parse_id``) without building the
    form when the query string holds no other field it checks: the form cost more than a dashboard's queries."""
    if request.method != "GET" or "status" in request.GET or "kind" in request.GET:
        return _query(request)
    ids = {}
    for name in ("campaign", "department"):
        value = request.GET.get(name)
        ids[name] = None if value in (None, "") else parse_id(value)
        if value not in (None, "") and ids[name] is None:
            raise Http404
    return ids


def _campaign_id(request):
    campaign_id = _dashboard_query(request)["campaign"]
    if campaign_id is None and request.method == "POST":
        campaign_id = _query(request, {"campaign": request.POST.get("campaign", "")})["campaign"]
    return campaign_id


def _campaign_or_none(request):
    return selectors.campaign_for_workspace(_campaign_id(request))


def _back(request, fallback):
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(fallback)


# ---------------------------------------------------------------------------
# Department dashboard and class pages
# ---------------------------------------------------------------------------


@never_cache
@capability_required("workspace.use")
def dashboard(request):
    # The campaign and the picker's list in one query (verification/dashboards.py, docs/performance.md §6).
    campaign, campaigns = selectors.workspace_campaigns(_campaign_id(request))
    departments = departments_for(request.user)
    department_id = _dashboard_query(request)["department"]
    may_sign_off = has_capability(request.user, "department.sign_off")
    if department_id:
        departments = departments.filter(pk=department_id)
    # One query for the check, the sign-off rows and the ids every other query of the page is narrowed by.
    listed = list(departments.order_by("name"))
    if department_id and not listed:
        raise Http404
    department_ids = [d.pk for d in listed]
    context = {
        "campaign": campaign,
        "campaigns": campaigns,
        "department_id": department_id,
        "tickets": dashboards.open_tickets(department_ids=department_ids)
        if has_capability(request.user, "ticket.view")
        else None,
        # A counsellor's dashboard is their classes only, in whichever departments they are.
        "class_scoped": is_counsellor(request.user),
    }
    if campaign:
        classes = classes_for(request.user) if context["class_scoped"] else None
        rows, total = dashboards.class_progress(campaign=campaign, departments=department_ids, classes=classes)
        sort = request.GET.get("sort", "class")
        rows.sort(key=SORTS.get(sort, SORTS["class"]))
        per_department = defaultdict(dashboards.Counts)
        for class_group, counts in rows:
            per_department[class_group.department.name].merge(counts)
        context.update(rows=rows, total=total, sort=sort, per_department=sorted(per_department.items()))
        if may_sign_off:
            signed = dashboards.current_sign_offs(campaign=campaign, department_ids=department_ids)
            context["sign_offs"] = [(d, signed.get(d.pk)) for d in listed]
        context["departments"] = departments  # the notices card's rows (notices_tags.notice_read_rates)
    return render(request, "workspace/dashboard.html", context)


@never_cache
@capability_required("workspace.use")
def class_detail(request, class_id):
    class_group = get_object_or_404(classes_for(request.user).select_related("department"), pk=class_id)
    campaign = _campaign_or_none(request)
    only_not_done = request.GET.get("filter") == "not_done"
    context = {
        "class_group": class_group,
        "campaign": campaign,
        "only_not_done": only_not_done,
        "class_scoped": is_counsellor(request.user),  # the crumbs say 我的班级, as the dashboard does
    }
    if campaign:
        context["checklists"] = selectors.class_checklists(
            campaign=campaign, class_group=class_group, only_not_done=only_not_done
        )
        context["waiting"] = helpdesk.waiting_ids(context["checklists"])
        # An expired link no longer opens: do not offer it to post in the class group.
        context["links"] = ClassProgressLink.objects.filter(
            campaign=campaign, class_group=class_group, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
    return render(request, "workspace/class_detail.html", context)


@require_POST
@capability_required("class.share_progress")
def progress_link_create(request, class_id):
    class_group = get_object_or_404(classes_for(request.user), pk=class_id)
    campaign = _campaign_or_none(request)
    if campaign is None:
        raise Http404
    link = services.progress_link_create(campaign=campaign, class_group=class_group, by=request.user)
    messages.success(
        request,
        _("已生成班级进度链接，有效期至 %(date)s，可发到班级群。")
        % {"date": f"{timezone.localtime(link.expires_at):%Y-%m-%d}"},
    )
    return redirect(f"{reverse('workspace:class_detail', args=[class_group.pk])}?campaign={campaign.pk}")


@require_POST
@capability_required("class.share_progress")
def progress_link_revoke(request, link_id):
    link = get_object_or_404(ClassProgressLink.objects.filter(class_group__in=classes_for(request.user)), pk=link_id)
    services.progress_link_revoke(link=link, by=request.user)
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
    pending = checklists.exclude(state__in=(*Checklist.FINISHED, Checklist.State.EXCLUDED)).order_by(
        "student__student_number"
    )
    names = selectors.names_with_extensions(pending, campaign=link.campaign)
    response = render(request, "workspace/progress_public.html", {"link": link, "counts": counts, "names": names})
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


# ---------------------------------------------------------------------------
# Review queue (department) and correction queue (registrar)
# ---------------------------------------------------------------------------

# The bulk form's last choice, kept in the session when something was refused,
# so that the queue shows it selected again (with the note) after the redirect.
BULK_CHOICE = "workspace_bulk_choice"


def _bulk_form(request, statuses) -> dict:
    """The actions the user may take on flags in ``statuses`` and their last refused choice."""
    choice = request.session.pop(BULK_CHOICE, {})
    return {"actions": services.staff_actions(request.user, statuses), "chosen": choice}


def _flag_rows(flags):
    flags = list(flags)
    prefetch_related_objects(flags, "events__actor")  # each card's history: who did what at which step
    findings = selectors.findings_for_students({f.checklist.student_id for f in flags})
    return [
        {
            "flag": flag,
            "field": flag.field,
            "findings": findings.get(flag.checklist.student_id, []),
            "recorded": flag.field.display(flag.recorded_value, masked=True),
            "claimed": flag.field.display(flag.claimed_value, masked=True),
            # A photo flag is judged by looking: the student's photos side by side, 学历照片 against its spec.
            "photos": selectors.student_photos(flag.checklist.student, with_problems=True) if flag.field.photo else [],
        }
        for flag in flags
    ]


@never_cache
@capability_required("flag.review")
def review_queue(request):
    query = _query(request)
    status, department_id = query["status"] or S.SUBMITTED, query["department"]
    flags = selectors.review_queue(user=request.user, statuses=[status], department_id=department_id)
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
            **_bulk_form(request, [status]),
        },
    )


def _act(request, flag_ids, action, actions) -> bool:
    """Apply the bulk action; False if anything was refused."""
    note = request.POST.get("note", "")
    if action == "note":
        # Every flag is looked up first: one out of scope is a 404 before any note is written.
        flags = [selectors.flag_for_staff(user=request.user, flag_id=flag_id) for flag_id in flag_ids]
        for flag in flags:
            try:
                services.flag_note(flag_id=flag.pk, by=request.user, note=note)
            except services.VerificationError as exc:
                messages.error(request, str(exc))
                return False
        messages.success(request, _("已添加备注。"))
        return True
    if action not in actions:
        messages.error(request, _("请选择操作。"))
        return False
    moved, refused = services.flags_transition_bulk(flag_ids=flag_ids, to=actions[action], by=request.user, note=note)
    if moved:
        messages.success(request, ngettext("已处理 %(n)s 条报错。", "已处理 %(n)s 条报错。", moved) % {"n": moved})
    for message in refused:
        messages.error(request, message)
    return not refused


def _flag_ids(request) -> list[int]:
    # An unreadable id ("²", "abc") is no choice at all: the page asks to pick again.
    form = FlagPickForm(request.POST)
    return form.cleaned_data["flags"] if form.is_valid() else []


@require_POST
@capability_required("flag.review")
def review_act(request):
    flag_ids = _flag_ids(request)
    action = request.POST.get("action", "")
    # Every move this user may make from some status; each flag's own status is checked by the service.
    actions = {
        name: services.STAFF_ACTIONS[name]
        for name, _label in services.staff_actions(request.user, S.values)
        if name in services.STAFF_ACTIONS
    }
    done = False
    if not flag_ids:
        messages.error(request, _("请至少选择一条报错。"))
    else:
        done = _act(request, flag_ids, action, actions)
    if not done:
        request.session[BULK_CHOICE] = {"action": action[:32], "note": request.POST.get("note", "")[:1000]}
    return _back(request, reverse("workspace:review_queue"))


@never_cache
@capability_required("flag.correct")
def correction_queue(request):
    # The CHSI correction list's filter form and selector: the file holds what the queue shows.
    form = CorrectionFilter(request.GET, user=request.user)
    if not form.is_valid():
        raise Http404
    statuses = list(CorrectionFilter.statuses_of(form.cleaned_data))
    rows = _flag_rows(form.flags())
    groups = {authority: [] for authority in roll_fields.Authority}
    for row in rows:
        groups[row["field"].authority].append(row)
    return render(
        request,
        "workspace/corrections.html",
        {
            "form": form,
            "groups": [(authority.label, authority, items) for authority, items in groups.items() if items],
            "status": form.cleaned_data["status"],
            "statuses": [(s, S(s).label) for s in CorrectionFilter.STATUSES],
            "campaign": form.cleaned_data["campaign"],
            "campaigns": form.fields["campaign"].queryset,
            **_bulk_form(request, statuses),
        },
    )


# ---------------------------------------------------------------------------
# A student's record, seen by staff, and answers recorded on their behalf
# ---------------------------------------------------------------------------


@never_cache
@capability_required("student.view")
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
        "photos": selectors.student_photos(student, with_problems=True),
        "waiting": bool(checklist and helpdesk.waiting_ids([checklist])),
        "extension_form": ExtensionForm(
            initial={"until": timezone.localtime(checklist.deadline) if checklist and checklist.deadline else None}
        ),
        "exclusion_form": ExclusionForm(),
        "inclusion_form": InclusionForm(),
        "may_extend": has_capability(request.user, "checklist.extend", student),
        "may_set_membership": has_capability(request.user, "checklist.membership", student),
    }
    return render(request, "workspace/student_record.html", context)


# ---------------------------------------------------------------------------
# Who is in: individual extensions, exclusions, inclusions (from the student's record page)
# ---------------------------------------------------------------------------


def _record_url(student, campaign) -> str:
    return f"{reverse('workspace:student_record', args=[student.pk])}?campaign={campaign.pk}"


def _staff_checklist(request, student_id):
    student = get_student_for(request.user, pk=student_id)
    checklist = get_object_or_404(
        Checklist.objects.select_related("campaign"), campaign=_campaign_or_none(request), student=student
    )
    return student, checklist


@require_POST
@capability_required("checklist.extend")
def checklist_extend(request, student_id):
    student, checklist = _staff_checklist(request, student_id)
    form = ExtensionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("请填写正确的延期时间。"))
        return redirect(_record_url(student, checklist.campaign))
    until = form.cleaned_data["until"]
    try:
        services.checklist_extend(
            checklist_id=checklist.pk, until=until, by=request.user, note=form.cleaned_data["note"]
        )
    except services.VerificationError as exc:
        messages.error(request, str(exc))
    else:
        if until:
            messages.success(
                request, _("已设置个人延期，至 %(when)s。") % {"when": f"{timezone.localtime(until):%Y-%m-%d %H:%M}"}
            )
        else:
            messages.success(request, _("已取消个人延期。"))
    return redirect(_record_url(student, checklist.campaign))


@require_POST
@capability_required("checklist.membership")
def checklist_exclude(request, student_id):
    student, checklist = _staff_checklist(request, student_id)
    form = ExclusionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("请选择不参加核对的原因"))
        return redirect(_record_url(student, checklist.campaign))
    try:
        services.checklist_exclude(
            checklist_id=checklist.pk,
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
            by=request.user,
        )
    except services.VerificationError as exc:
        messages.error(request, str(exc))
    else:
        label = Checklist.Exclusion(form.cleaned_data["reason"]).label
        messages.success(request, _("已记为不参加本次核对：%(reason)s。") % {"reason": label})
    return redirect(_record_url(student, checklist.campaign))


@require_POST
@capability_required("checklist.membership")
def checklist_restore(request, student_id):
    student, checklist = _staff_checklist(request, student_id)
    services.checklist_restore(checklist_id=checklist.pk, by=request.user)
    messages.success(request, _("该学生已恢复参加本次核对。"))
    return redirect(_record_url(student, checklist.campaign))


@require_POST
@capability_required("checklist.membership")
def checklist_include(request, student_id):
    student = get_student_for(request.user, pk=student_id)
    campaign = _campaign_or_none(request)
    form = InclusionForm(request.POST)
    if campaign is None or not form.is_valid():
        raise Http404
    try:
        services.checklist_include(
            campaign=campaign, student=student, reason=form.cleaned_data["reason"], by=request.user
        )
    except services.VerificationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("已加入本次核对。"))
    return redirect(_record_url(student, campaign))


# ---------------------------------------------------------------------------
# Department sign-off (院系确认提交)
# ---------------------------------------------------------------------------


@require_POST
@capability_required("department.sign_off")
def department_sign_off(request):
    campaign = _campaign_or_none(request)
    form = SignOffForm(request.POST)
    if campaign is None or not form.is_valid():
        raise Http404
    department = get_department_for(request.user, pk=form.cleaned_data["department"])
    try:
        services.department_sign_off(
            campaign=campaign, department=department, remark=form.cleaned_data["remark"], by=request.user
        )
    except services.VerificationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("%(department)s 已确认提交。") % {"department": department.name})
    return redirect(f"{reverse('workspace:dashboard')}?campaign={campaign.pk}")


@require_POST
@capability_required("department.withdraw_sign_off")
def sign_off_withdraw(request, sign_off_id):
    sign_off = get_object_or_404(DepartmentSignOff.objects.select_related("department"), pk=sign_off_id)
    form = SignOffWithdrawForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("撤回时请填写原因"))
    else:
        services.sign_off_withdraw(sign_off_id=sign_off.pk, reason=form.cleaned_data["reason"], by=request.user)
        messages.success(request, _("已撤回 %(department)s 的确认提交。") % {"department": sign_off.department.name})
    return redirect(f"{reverse('workspace:school')}?campaign={sign_off.campaign_id}")


@require_POST
@capability_required("student.record_for")
def proxy_confirm_all(request, student_id):
    student = get_student_for(request.user, pk=student_id)
    checklist = get_object_or_404(Checklist, campaign=_campaign_or_none(request), student=student)
    form = ProxyConfirmAllForm(request.POST)
    if not form.is_valid():
        if "attest" in form.errors:
            messages.error(request, form.errors["attest"][0])
        if "record_version" in form.errors:
            messages.error(request, _("页面已过期，请刷新后重试。"))
    else:
        try:
            services.checklist_confirm_all(
                checklist_id=checklist.pk,
                record_version=form.cleaned_data["record_version"],
                by=request.user,
                proxy=True,
            )
        except services.VerificationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("已代为登记：全部正确。"))
    return redirect(f"{reverse('workspace:student_record', args=[student.pk])}?campaign={checklist.campaign_id}")


@never_cache
@capability_required("student.record_for")
def proxy_flag(request, student_id, field_code):
    student = get_student_for(request.user, pk=student_id)
    campaign = _campaign_or_none(request)
    checklist = get_object_or_404(Checklist.objects.select_related("campaign"), campaign=campaign, student=student)
    field = next((f for f in checklist.checked_fields() if f.code == field_code), None)
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
@capability_required("school.view")
def school(request):
    # The campaign and the picker's list in one query, the counts and the chart's days in another, by
    # SQL built once per process (verification/dashboards.py, docs/performance.md §6).
    campaign, campaigns = selectors.workspace_campaigns(_campaign_id(request))
    context = {"campaign": campaign, "campaigns": campaigns, "tickets": dashboards.open_tickets()}
    if campaign:
        rows, cohorts, total, per_day = dashboards.school_overview(campaign=campaign)
        days = dashboards.daily_progress(campaign=campaign, total=total.total, per_day=per_day)
        context.update(rows=rows, total=total, cohorts=cohorts, chart=dashboards.progress_chart(days), days=days)
        signed = dashboards.current_sign_offs(campaign=campaign)
        context["sign_offs"] = [(department, signed.get(department.pk)) for department, _counts in rows]
    return render(request, "workspace/school.html", context)


@never_cache
@capability_required("school.view")
def findings(request):
    # The findings export's filter form and selector: the file holds what the page lists.
    form = FindingFilter(request.GET, user=request.user)
    if not form.is_valid():
        raise Http404
    department, kind = form.cleaned_data["department"], form.cleaned_data["finding_kind"]
    page = Paginator(form.findings(), 100).get_page(request.GET.get("page"))
    return render(
        request,
        "workspace/findings.html",
        {
            "page": page,
            "form": form,
            "kinds": ImportFinding.Kind.choices,
            "kind": kind,
            "departments": departments_for(request.user),
            "department_id": department.pk if department else None,
            "not_in_roster": selectors.checklists_not_in_roster(),
        },
    )
