"""Filter forms of the workspace lists, shared by each page and its Excel export (see students.filters).

Each form reads a list's filters, limited to the viewer's scope, and returns
the list from one selector, so the correction queue, a class's unverified
students and the data-quality page show on screen exactly the rows their
export writes.
"""

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from students.filters import FilterForm
from students.models import Department, ImportFinding
from students.permissions import classes_for, departments_for, is_registrar

from . import selectors
from .models import Campaign, Flag

S = Flag.Status


class DepartmentScopeForm(FilterForm):
    """One department, or all of the user's; a secretary's "all" is pinned to their departments at the time.

    The pinned list is stored with an export, so the task and every download
    check those departments again (a secretary moved away loses the file).
    """

    department = forms.ModelChoiceField(
        label=gettext_lazy("院系"), required=False, queryset=None, empty_label=gettext_lazy("全部院系")
    )
    departments = forms.ModelMultipleChoiceField(required=False, queryset=None, widget=forms.MultipleHiddenInput)

    def limit_to_scope(self, user):
        super().limit_to_scope(user)
        allowed = departments_for(user).order_by("name")
        self.fields["department"].queryset = allowed
        self.fields["departments"].queryset = allowed

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("department") and not cleaned.get("departments") and not is_registrar(self.user):
            cleaned["departments"] = list(departments_for(self.user).order_by("pk"))
        return cleaned

    @staticmethod
    def departments_of(user, data) -> tuple[QuerySet, str]:
        """(the departments to list, their names for the log); the whole school for registrar staff."""
        chosen = [data["department"]] if data.get("department") else list(data.get("departments") or [])
        # No user: a scheduled job (the department digests) with parameters it built itself.
        allowed = departments_for(user) if user is not None else Department.objects.all()
        if not chosen:
            return allowed, _("全校")
        names = _("、").join(sorted(d.name for d in chosen))
        return allowed.filter(pk__in=[d.pk for d in chosen]), names


class CorrectionFilter(FilterForm):
    """The registrar's correction queue and the CHSI correction list."""

    status = forms.ChoiceField(label=gettext_lazy("状态"), required=False)
    campaign = forms.ModelChoiceField(
        label=gettext_lazy("核对活动"), required=False, queryset=None, empty_label=gettext_lazy("全部活动")
    )

    # 学信网已更正 is offered too, so a corrected flag can still be found.
    STATUSES = (*Flag.PENDING_CORRECTION, S.CORRECTED)

    def limit_to_scope(self, user):
        self.fields["status"].choices = [("", _("全部待处理"))] + [(s, S(s).label) for s in self.STATUSES]
        self.fields["campaign"].queryset = Campaign.objects.order_by("-opens_at")

    @staticmethod
    def statuses_of(data) -> tuple:
        return (data["status"],) if data.get("status") else Flag.PENDING_CORRECTION

    @classmethod
    def flags_of(cls, user, data) -> QuerySet[Flag]:
        return selectors.correction_queue(user=user, statuses=cls.statuses_of(data), campaign=data.get("campaign"))

    def flags(self) -> QuerySet[Flag]:
        return self.flags_of(self.user, self.cleaned_data)


class UnverifiedFilter(DepartmentScopeForm):
    """Students who have not finished their check: a class page's "only not done" list and its export."""

    campaign = forms.ModelChoiceField(label=gettext_lazy("核对活动"), queryset=None)
    # Set by a class page's button; "my exports" offers whole departments.
    class_group = forms.ModelChoiceField(
        label=gettext_lazy("班级"), required=False, queryset=None, widget=forms.HiddenInput
    )

    def limit_to_scope(self, user):
        super().limit_to_scope(user)
        self.fields["campaign"].queryset = Campaign.objects.all()
        self.fields["class_group"].queryset = classes_for(user).select_related("department")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("class_group"):
            # A class is its own scope: no department list to pin.
            cleaned.pop("departments", None)
        return cleaned

    @classmethod
    def checklists_of(cls, user, data):
        if data.get("class_group"):
            return selectors.checklists_not_done(campaign=data["campaign"], class_group=data["class_group"])
        departments, _names = cls.departments_of(user, data)
        return selectors.checklists_not_done(campaign=data["campaign"], departments=departments)

    def checklists(self):
        return self.checklists_of(self.user, self.cleaned_data)

    @classmethod
    def scope_label_of(cls, user, data) -> str:
        if data.get("class_group"):
            return f"{data['class_group'].department.name} · {data['class_group'].name}"
        return cls.departments_of(user, data)[1]


class FindingFilter(DepartmentScopeForm):
    """The data-quality page and the findings list."""

    finding_kind = forms.ChoiceField(
        label=gettext_lazy("类型"),
        required=False,
        choices=[("", gettext_lazy("全部类型"))] + ImportFinding.Kind.choices,
    )

    @classmethod
    def findings_of(cls, user, data) -> QuerySet[ImportFinding]:
        departments, _names = cls.departments_of(user, data)
        return selectors.findings_list(departments=departments, kind=data.get("finding_kind") or "")

    def findings(self) -> QuerySet[ImportFinding]:
        return self.findings_of(self.user, self.cleaned_data)

    @classmethod
    def scope_label_of(cls, user, data) -> str:
        parts = [cls.departments_of(user, data)[1]]
        if data.get("finding_kind"):
            parts.append(str(ImportFinding.Kind(data["finding_kind"]).label))
        return " · ".join(parts)


class SourceDifferenceFilter(FilterForm):
    """The comparison page of CHSI with a second source (students.sources), and its export."""

    source = forms.ModelChoiceField(label=gettext_lazy("对照名单"), queryset=None, widget=forms.HiddenInput)
    field = forms.ChoiceField(label=gettext_lazy("字段"), required=False)
    department = forms.ModelChoiceField(
        label=gettext_lazy("院系"),
        required=False,
        queryset=Department.objects.none(),
        empty_label=gettext_lazy("全部院系"),
    )
    decision = forms.ChoiceField(label=gettext_lazy("处理"), required=False)

    def limit_to_scope(self, user):
        from students import fields as roll_fields
        from students.models import RosterSource, SourceResolution

        self.fields["source"].queryset = RosterSource.objects.all()
        self.fields["field"].choices = [("", gettext_lazy("全部字段"))] + [
            (f.code, f.label) for f in roll_fields.ROLL_FIELDS
        ]
        self.fields["department"].queryset = departments_for(user)
        self.fields["decision"].choices = [("", gettext_lazy("全部")), ("open", gettext_lazy("待处理"))] + list(
            SourceResolution.Decision.choices
        )

    @staticmethod
    def differences_of(user, data, diff=None) -> list:
        """The differences the filters select (``diff``: the comparison already made for the page)."""
        from students.permissions import students_for
        from students.sources import roster_diff

        diff = diff or roster_diff(data["source"], students=students_for(user))
        rows = diff.differences
        if data.get("field"):
            rows = [d for d in rows if d.field == data["field"]]
        if data.get("department"):
            rows = [d for d in rows if d.department_id == data["department"].pk]
        if data.get("decision") == "open":
            rows = [d for d in rows if not d.decision]
        elif data.get("decision"):
            rows = [d for d in rows if d.decision == data["decision"]]
        return rows
