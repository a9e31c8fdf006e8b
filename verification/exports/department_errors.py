"""The department's list of students whose record is wrong (学院新生学籍信息有误学生名单); ID numbers masked."""

from django import forms
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from students import fields as roll_fields

from ..filters import DepartmentScopeForm
from ..models import Campaign, Evidence, Flag
from .base import (
    Exporter,
    by_department,
    choice_labels,
    ciphertext,
    decrypted_chunks,
    field_labels,
    number,
    text,
    value_masker,
)
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

    def _pieces(self, user, params, rows) -> list:
        """``rows`` in pieces for ``fetched_chunks``: one per department."""
        departments, _names = DepartmentErrorsForm.departments_of(user, params)
        return by_department(rows, "checklist__student__department", departments)

    def rows(self, user, params):
        # Only the columns written, the encrypted ones decrypted a chunk at a time (docs/performance.md §4).
        statuses, labels, masked = choice_labels(Flag.Status.choices), field_labels(), value_masker()
        id_code = roll_fields.BY_KEY["id_number"].code
        evidence_counts = (
            Evidence.objects.filter(flag=OuterRef("pk")).order_by().values("flag").annotate(n=Count("*")).values("n")
        )
        rows = (
            self._flags(user, params)
            # Counted beside each row, not by grouping: a GROUP BY over the wide rows cost a sort on disk.
            .annotate(evidence_count=Coalesce(Subquery(evidence_counts, output_field=IntegerField()), 0))
            .order_by("checklist__student__department__name", "checklist__student__student_number", "field_code")
            .values_list(
                "checklist__student__department__name",
                "checklist__student__class_name",
                "checklist__student__student_number",
                "checklist__student__name",
                ciphertext("checklist__student__id_number"),
                "field_code",
                ciphertext("recorded_value"),
                ciphertext("claimed_value"),
                "explanation",
                "evidence_count",
                "checklist__student__phone",
                "status",
            )
        )
        for chunk, (id_values, recorded_values, claimed_values) in decrypted_chunks(
            self._pieces(user, params, rows), (4, 6, 7)
        ):
            for row, id_value, recorded, claimed in zip(chunk, id_values, recorded_values, claimed_values, strict=True):
                department, class_name, number, name, _id, code, _recorded, _claimed, explanation, n, phone, status = (
                    row
                )
                yield [
                    department,
                    class_name,
                    number,
                    name,
                    masked(id_code, id_value),
                    labels.get(code, code),
                    masked(code, recorded),
                    masked(code, claimed),
                    explanation,
                    n,
                    phone,
                    statuses[status],
                ]
