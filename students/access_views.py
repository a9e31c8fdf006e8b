"""The access log page for registrar staff: search who looked at what."""

from django import forms
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from .models import AccessEvent
from .permissions import registrar_required


class AccessLogFilter(forms.Form):
    action = forms.ChoiceField(label=_("操作"), required=False, choices=[("", _("全部"))] + AccessEvent.Action.choices)
    username = forms.CharField(label=_("账号"), required=False, max_length=64)
    student_number = forms.CharField(label=_("学号"), required=False, max_length=32)
    since = forms.DateField(label=_("起始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("截止日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))


@never_cache
@registrar_required
def access_log_list(request):
    form = AccessLogFilter(request.GET or None)
    events = AccessEvent.objects.select_related("user", "student")
    filters = {}
    if form.is_valid():
        data = form.cleaned_data
        if data["action"]:
            events = events.filter(action=data["action"])
        if data["username"]:
            events = events.filter(user__username=data["username"].strip())
        if data["student_number"]:
            events = events.filter(student__student_number=data["student_number"].strip())
        if data["since"]:
            events = events.filter(at__date__gte=data["since"])
        if data["until"]:
            events = events.filter(at__date__lte=data["until"])
        filters = {key: data[key] for key in ("action", "username", "student_number") if data[key]}
    page = Paginator(events.order_by("-at", "-id"), 100).get_page(request.GET.get("page"))
    return render(request, "students/access_log.html", {"form": form, "page": page, "filters": filters})
