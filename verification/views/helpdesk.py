"""The help desk pages: the ticket queue and one ticket with the student's record beside it.

Registrar staff (``ticket.manage``) assign, change status and reply; a
department's secretary (``ticket.view``) reads their students' tickets.
"""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from students.audit import access_log
from students.models import AccessEvent
from students.permissions import capability_required, departments_for, has_capability

from .. import helpdesk, selectors
from ..models import SupportRequest

T = SupportRequest.Status


class QueueForm(forms.Form):
    """The queue's query string; a value that cannot be read is "not found" (404)."""

    status = forms.ChoiceField(required=False)
    kind = forms.ChoiceField(required=False, choices=[("", "")] + SupportRequest.Kind.choices)
    department = forms.IntegerField(required=False, min_value=1)
    assignee = forms.CharField(required=False, max_length=12)
    page = forms.IntegerField(required=False, min_value=1)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("open", ""), ("all", "")] + T.choices
        self.user = user

    def clean_department(self):
        department = self.cleaned_data["department"]
        if department and not departments_for(self.user).filter(pk=department).exists():
            raise forms.ValidationError("out of scope")
        return department

    def clean_assignee(self):
        assignee = self.cleaned_data["assignee"]
        if assignee not in ("", "none") and not assignee.isdigit():
            raise forms.ValidationError("unknown")
        return assignee

    def query(self) -> helpdesk.QueueFilter:
        data = self.cleaned_data
        status = data["status"] or "open"
        return helpdesk.QueueFilter(
            status="" if status == "all" else status,
            kind=data["kind"],
            department=data["department"],
            assignee=data["assignee"],
        )


STATUS_FILTERS = [
    ("open", gettext_lazy("未解决（待处理和处理中）")),
    ("all", gettext_lazy("全部")),
    *T.choices,
]


@never_cache
@capability_required("ticket.view")
def ticket_queue(request):
    form = QueueForm(request.GET, user=request.user)
    if not form.is_valid():
        raise Http404
    query = form.query()
    page = Paginator(helpdesk.ticket_queue(request.user, query), 100).get_page(form.cleaned_data["page"])
    context = {
        "page": page,
        "query": query,
        "status": form.cleaned_data["status"] or "open",
        "statuses": STATUS_FILTERS,
        "kinds": SupportRequest.Kind.choices,
        "departments": departments_for(request.user).order_by("name"),
        "assignees": helpdesk.assignees(),
        "counts": helpdesk.status_counts(request.user),
        "waiting": helpdesk.waiting_ids([ticket.checklist for ticket in page]),
    }
    return render(request, "workspace/helpdesk_queue.html", context)


@never_cache
@capability_required("ticket.view")
def ticket_detail(request, ticket_id):
    ticket = helpdesk.ticket_for(request.user, ticket_id)
    checklist = ticket.checklist
    student = checklist.student
    access_log(request, AccessEvent.Action.RECORD_VIEW, student=student, target=student.student_number)
    context = {
        "ticket": ticket,
        "student": student,
        "checklist": checklist,
        "rows": selectors.checklist_rows(checklist, own=False),
        "waiting": bool(helpdesk.waiting_ids([checklist])),
        "events": ticket.events.select_related("actor", "assignee"),
        "other_tickets": student_tickets(ticket),
        "manage": has_capability(request.user, "ticket.manage", checklist),
        "moves": [(to, T(to).label) for (frm, to) in sorted(helpdesk.TRANSITIONS) if frm == ticket.status],
        "assignees": helpdesk.assignees(),
        "statuses": T.choices,
    }
    return render(request, "workspace/helpdesk_ticket.html", context)


def student_tickets(ticket):
    """The student's other tickets, so staff see a second report of the same problem."""
    return (
        SupportRequest.objects.filter(checklist__student_id=ticket.checklist.student_id)
        .exclude(pk=ticket.pk)
        .select_related("checklist__campaign")
    )


class ActForm(forms.Form):
    action = forms.ChoiceField(choices=[("assign", ""), ("status", ""), ("reply", "")])
    assignee = forms.CharField(required=False, max_length=12)
    to = forms.ChoiceField(required=False, choices=[("", "")] + T.choices)
    text = forms.CharField(required=False, max_length=helpdesk.MAX_REPLY)


@require_POST
@capability_required("ticket.manage")
def ticket_act(request, ticket_id):
    ticket = helpdesk.ticket_for(request.user, ticket_id)
    form = ActForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("请检查填写的内容。"))
        return redirect("workspace:ticket_detail", ticket_id=ticket.pk)
    data = form.cleaned_data
    try:
        if data["action"] == "assign":
            assignee = None
            if data["assignee"]:
                assignee = helpdesk.assignees().filter(pk=data["assignee"] if data["assignee"].isdigit() else 0).first()
                if assignee is None:
                    raise helpdesk.HelpdeskError(_("只能指定学籍科工作人员处理"))
            helpdesk.ticket_assign(ticket_id=ticket.pk, assignee=assignee, by=request.user)
            success = _("已指定处理人。") if assignee else _("已取消指定处理人。")
        elif data["action"] == "status":
            helpdesk.ticket_set_status(ticket_id=ticket.pk, to=data["to"], by=request.user)
            success = _("状态已更新。")
        else:
            helpdesk.ticket_reply(ticket_id=ticket.pk, text=data["text"], to=data["to"], by=request.user)
            success = _(
                "已回复学生：学生会在站内消息和核对页面看到回复，并通过提醒渠道（企业微信、钉钉或邮件等）收到通知。"
            )
    except helpdesk.HelpdeskError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
    return redirect(reverse("workspace:ticket_detail", args=[ticket.pk]))
