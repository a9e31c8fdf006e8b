"""The department's list of students whose record is wrong (学院新生学籍信息有误学生名单); ID numbers masked."""

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..filters import DepartmentScopeForm
from ..models import Campaign, Flag
from .base import Exporter, field_label, masked, number, text
from .registry import register


class DepartmentErrorsForm(DepartmentScopeForm):
    campaign = forms.ModelChoiceField(label=gettext_lazy("核对活动"), queryset=None)

    def limit_to_scope(self, user):
        super().limit_to_scope(user)
        self.fields["campaign"].queryset = Campaign.objects.all()


@register
class DepartmentErrorList(Exporter):
    key = "department-errors"
    label = gettext_lazy("学籍信息有误学生名单")
    capability = "export.department_lists"
    form_class = DepartmentErrorsForm
    sheet_title = gettext_lazy("有误学生名单")
    landscape = True
    columns = [
        text(gettext_lazy("院系"), 14),
        text(gettext_lazy("班级"), 12),
        text(gettext_lazy("学号"), 14),
        text(gettext_lazy("姓名"), 10),
        text(gettext_lazy("证件号码"), 20),
        text(gettext_lazy("有误字段"), 12),
        text(gettext_lazy("学信网上的值"), 20),
        text(gettext_lazy("正确的值"), 20),
        text(gettext_lazy("说明"), 30),
        number(gettext_lazy("证明材料数"), 8),
        text(gettext_lazy("联系电话"), 14),
        text(gettext_lazy("处理状态"), 22),
    ]

    def title(self, user, params):
        return _("%(campaign)s 学籍信息有误学生名单") % {"campaign": params["campaign"].name}

    def scope_label(self, user, params):
        return f"{params['campaign'].name} · {self._where(user, params)}"

    def filename_parts(self, user, params):
        return [self._where(user, params), _("学籍信息有误学生名单")]

    def _where(self, user, params):
        return DepartmentErrorsForm.departments_of(user, params)[1]

    def _flags(self, user, params):
        departments, _names = DepartmentErrorsForm.departments_of(user, params)
        return Flag.objects.filter(
            checklist__campaign=params["campaign"], checklist__student__department__in=departments
        ).exclude(status=Flag.Status.WITHDRAWN)

    def estimate(self, user, params):
        return self._flags(user, params).count()

    def rows(self, user, params):
        flags = (
            self._flags(user, params)
            .select_related("checklist__student__department")
            .prefetch_related("evidence")
            .order_by("checklist__student__department__name", "checklist__student__student_number", "field_code")
        )
        for flag in flags.iterator(chunk_size=2000):
            student = flag.checklist.student
            yield [
                student.department.name,
                student.class_name,
                student.student_number,
                student.name,
                student.masked_id_number,
                field_label(flag.field_code),
                masked(flag.field_code, flag.recorded_value),
                masked(flag.field_code, flag.claimed_value),
                flag.explanation,
                len(flag.evidence.all()),
                student.phone,
                flag.get_status_display(),
            ]
