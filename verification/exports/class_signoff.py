"""The class sign-off sheet (核对登记表): printed, signed by each student, the counsellor and the class monitor."""

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from students.permissions import classes_for

from .. import selectors
from ..models import Campaign, Checklist, Flag
from .base import Exporter, ExportForm, Sheet, choice_labels, datetime_, field_label, masked, number, text
from .registry import register


class ClassSignOffForm(ExportForm):
    campaign = forms.ModelChoiceField(label=gettext_lazy("核对活动"), queryset=None)
    class_group = forms.ModelChoiceField(label=gettext_lazy("班级"), queryset=None)

    def limit_to_scope(self, user):
        self.fields["campaign"].queryset = Campaign.objects.all()
        self.fields["class_group"].queryset = classes_for(user).select_related("department")


@register
class ClassSignOffSheet(Exporter):
    key = "class-sign-off"
    label = gettext_lazy("班级核对登记表")
    capability = "export.class_lists"
    form_class = ClassSignOffForm
    inline = True

    def title(self, user, params):
        return _("%(campaign)s 核对登记表 · %(cls)s") % {
            "campaign": params["campaign"].name,
            "cls": params["class_group"].name,
        }

    def scope_label(self, user, params):
        class_group = params["class_group"]
        return " · ".join([params["campaign"].name, class_group.department.name, class_group.name])

    def filename_parts(self, user, params):
        return [params["class_group"].name, _("核对登记表")]

    def estimate(self, user, params):
        return Checklist.objects.filter(campaign=params["campaign"], student__class_group=params["class_group"]).count()

    def sheets(self, user, params):
        campaign, class_group = params["campaign"], params["class_group"]
        states = choice_labels(Checklist.State.choices)
        checklists = selectors.class_checklists(campaign=campaign, class_group=class_group).values_list(
            "student__student_number", "student__name", "state", "finished_at"
        )
        yield Sheet(
            _("核对登记表"),
            [
                number(_("序号"), 6),
                text(_("学号"), 14),
                text(_("姓名"), 10),
                text(_("状态"), 14),
                datetime_(_("确认时间"), 17),
                text(_("签名"), 16),
            ],
            (
                [n, student_number, name, states[state], finished_at, ""]
                for n, (student_number, name, state, finished_at) in enumerate(checklists, start=1)
            ),
            footer=[
                _("以上信息已由本人逐项核对。"),
                _("辅导员签名：________________        班长签名：________________        日期：______年____月____日"),
            ],
            row_height=24,
        )
        flags = (
            Flag.objects.filter(checklist__campaign=campaign, checklist__student__class_group=class_group)
            .exclude(status=Flag.Status.WITHDRAWN)
            .select_related("checklist__student")
            .order_by("checklist__student__student_number", "field_code")
        )
        yield Sheet(
            _("信息错误反馈"),
            [
                text(_("学号"), 14),
                text(_("姓名"), 10),
                text(_("字段"), 12),
                text(_("正确内容"), 22),
                text(_("说明"), 30),
                text(_("联系电话"), 14),
                text(_("处理状态"), 22),
            ],
            (
                [
                    f.checklist.student.student_number,
                    f.checklist.student.name,
                    field_label(f.field_code),
                    masked(f.field_code, f.claimed_value),
                    f.explanation,
                    f.checklist.student.phone,
                    f.get_status_display(),
                ]
                for f in flags
            ),
            landscape=True,
        )
