"""The error list of chosen classes (班级学籍信息有误学生名单): a counsellor's, of their own classes only.

The department's list (department_errors.py) is department-wide; a counsellor
holds classes, possibly of two departments, never a department.  Same columns,
ID numbers masked; "all" is pinned to the user's classes at the time, so the
task and every download check those classes again.
"""

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from students.permissions import classes_for

from ..models import Campaign, Flag
from .base import ExportForm
from .department_errors import DepartmentErrorList
from .registry import register


class ClassErrorsForm(ExportForm):
    campaign = forms.ModelChoiceField(label=gettext_lazy("核对活动"), queryset=None)
    classes = forms.ModelMultipleChoiceField(
        label=gettext_lazy("班级"),
        required=False,
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("不选则为你负责的全部班级"),
    )

    def limit_to_scope(self, user):
        self.fields["campaign"].queryset = Campaign.objects.all()
        self.fields["classes"].queryset = classes_for(user).select_related("department").order_by("name")

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("classes"):
            cleaned["classes"] = list(classes_for(self.user).order_by("pk"))
        return cleaned


@register
class ClassErrorList(DepartmentErrorList):
    key = "class-errors"
    label = gettext_lazy("班级学籍信息有误学生名单")
    capability = "export.class_lists"
    form_class = ClassErrorsForm

    def title(self, user, params):
        return _("%(campaign)s 学籍信息有误学生名单（%(classes)s）") % {
            "campaign": params["campaign"].name,
            "classes": self._where(user, params),
        }

    def _where(self, user, params):
        names = sorted(c.name for c in params.get("classes") or [])
        if len(names) > 3:  # a secretary's "all": the title and file name stay short
            return _("%(first)s等 %(n)s 个班级") % {"first": _("、").join(names[:3]), "n": len(names)}
        return _("、").join(names)

    def _pieces(self, user, params, rows):
        return [rows]  # a counsellor's few classes: one query

    def _flags(self, user, params):
        # Within the user's classes again: the parameters may be a stored export's, checked at build time.
        classes = classes_for(user).filter(pk__in=[c.pk for c in params.get("classes") or []])
        return Flag.objects.filter(
            checklist__campaign=params["campaign"], checklist__student__class_group__in=classes
        ).exclude(status=Flag.Status.WITHDRAWN)
