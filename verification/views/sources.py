"""Comparing CHSI with the school's own roster, and the API clients of campus systems (registrar staff)."""

from django import forms
from django.contrib import messages
from django.http import Http404, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from students import fields as roll_fields
from students.api_clients import api_client_create, api_client_revoke
from students.errors import ServiceError
from students.models import ApiClient, Department, RosterSource, SourceResolution
from students.permissions import capability_required, departments_for, students_for
from students.sources import roster_diff

from ..filters import SourceDifferenceFilter
from ..sources import source_difference_resolve

Decision = SourceResolution.Decision
PAGE_ROWS = 500


@capability_required("roster.compare")
def source_list(request):
    return render(request, "workspace/sources.html", {"sources": RosterSource.objects.select_related("imported_by")})


@capability_required("roster.compare")
def source_diff(request, source_id: int):
    source = get_object_or_404(RosterSource, pk=source_id)
    form = SourceDifferenceFilter({**request.GET.dict(), "source": source.pk}, user=request.user)
    if not form.is_valid():
        raise Http404
    diff = roster_diff(source, students=students_for(request.user))
    differences = SourceDifferenceFilter.differences_of(request.user, form.cleaned_data, diff)
    names = dict(departments_for(request.user).values_list("pk", "name"))
    by_department = sorted(
        ((names.get(pk, "—"), n) for pk, n in diff.counts_by_department().items()), key=lambda r: -r[1]
    )
    return render(
        request,
        "workspace/source_diff.html",
        {
            "source": source,
            "diff": diff,
            "form": form,
            "differences": differences[:PAGE_ROWS],
            "shown": len(differences),
            "by_field": diff.counts_by_field(),
            "by_department": by_department,
            "decisions": Decision.choices,
        },
    )


class DecisionForm(forms.Form):
    student_number = forms.CharField(max_length=32)
    field = forms.ChoiceField(choices=[(f.code, f.code) for f in roll_fields.ROLL_FIELDS])
    decision = forms.ChoiceField(choices=Decision.choices)
    # The list's filters, to come back to the same view.
    query = forms.CharField(required=False, max_length=500)


@require_POST
@capability_required("roster.compare")
def source_decide(request, source_id: int):
    form = DecisionForm(request.POST)
    if not form.is_valid():
        raise Http404
    data = form.cleaned_data
    try:
        source_difference_resolve(
            source_id=source_id,
            student_number=data["student_number"],
            field=data["field"],
            decision=data["decision"],
            by=request.user,
        )
    except ServiceError as exc:
        if isinstance(exc, Http404):
            raise
        messages.error(request, str(exc))
    else:
        messages.success(request, _("已记录处理结果"))
    filters = SourceDifferenceFilter({**QueryDict(data["query"]).dict(), "source": source_id}, user=request.user)
    query = f"?{QueryDict(data['query']).urlencode()}" if data["query"] and filters.is_valid() else ""
    return redirect(reverse("workspace:source_diff", args=[source_id]) + query)


# ----------------------------------------------------------------------------
# API clients
# ----------------------------------------------------------------------------


class ApiClientForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("客户端名称"), max_length=100, help_text=gettext_lazy("例如“教务系统”“数据中台”")
    )
    departments = forms.ModelMultipleChoiceField(
        label=gettext_lazy("限定院系"),
        required=False,
        queryset=Department.objects.all(),
        help_text=gettext_lazy("不选即全校。"),
    )
    can_write = forms.BooleanField(label=gettext_lazy("可导入名单、更新联系方式"), required=False)
    can_reveal = forms.BooleanField(label=gettext_lazy("可读取完整证件号码（每次记录日志）"), required=False)
    rate_per_minute = forms.IntegerField(label=gettext_lazy("每分钟请求上限"), min_value=1, max_value=6000, initial=120)


@capability_required("api.manage_clients")
def api_clients(request):
    token = None
    form = ApiClientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            client, token = api_client_create(**form.cleaned_data, by=request.user)
        except ServiceError as exc:
            form.add_error("name", str(exc))
        else:
            messages.success(request, _("已创建“%(name)s”：令牌只显示这一次，请立即复制。") % {"name": client.name})
            form = ApiClientForm()
    return render(
        request,
        "workspace/api_clients.html",
        {"form": form, "token": token, "clients": ApiClient.objects.prefetch_related("account__departments")},
    )


@require_POST
@capability_required("api.manage_clients")
def api_client_revoke_view(request, client_id: int):
    client = get_object_or_404(ApiClient, pk=client_id, revoked_at__isnull=True)
    api_client_revoke(client=client, by=request.user)
    messages.success(request, _("已停用“%(name)s”") % {"name": client.name})
    return redirect("workspace:api_clients")
