"""Filter forms of list pages (NetBox's filterset idea): one form reads the filters and runs the query.

A list page and its Excel export use the same filter form, so the file always
holds exactly what the screen showed (verification.exports reads these forms
as its parameter forms).  A filter form is bound to the viewer: the querysets
of its choices are limited to the viewer's scope, so a choice outside it is an
invalid choice (the page and the export answer 404).
"""

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from .models import AccessEvent, Student
from .permissions import classes_for, students_for
from .selectors import student_list


class FilterForm(forms.Form):
    """A filter form bound to a viewer; subclasses limit their querysets in ``limit_to_scope``."""

    def __init__(self, data=None, *, user, **kwargs):
        super().__init__(data, **kwargs)
        self.user = user
        self.limit_to_scope(user)

    def limit_to_scope(self, user):
        """Set the querysets of the form's choice fields for ``user``."""


class AccessLogFilter(FilterForm):
    """The access log page and its export (registrar staff only: the views check the capability)."""

    action = forms.ChoiceField(label=_("操作"), required=False, choices=[("", _("全部"))] + AccessEvent.Action.choices)
    username = forms.CharField(label=_("账号"), required=False, max_length=64)
    student_number = forms.CharField(label=_("学号"), required=False, max_length=32)
    since = forms.DateField(label=_("起始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("截止日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def events(self) -> QuerySet[AccessEvent]:
        """The events the filters select, newest first (every event when the form is unbound)."""
        return self.events_of(self.cleaned_data if self.is_bound else {})

    @staticmethod
    def events_of(data) -> QuerySet[AccessEvent]:
        events = AccessEvent.objects.select_related("user", "student").order_by("-at", "-id")
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("username"):
            events = events.filter(user__username=data["username"].strip())
        if data.get("student_number"):
            events = events.filter(student__student_number=data["student_number"].strip())
        # Days in the school's time zone (the current time zone), as the page shows the times.
        if data.get("since"):
            events = events.filter(at__date__gte=data["since"])
        if data.get("until"):
            events = events.filter(at__date__lte=data["until"])
        return events


class StudentFilter(FilterForm):
    """The student list: 学号 or name, class and 学籍状态, each choice limited to the students the viewer sees."""

    q = forms.CharField(label=_("学号或姓名"), required=False, max_length=50)
    class_group = forms.ModelChoiceField(label=_("班级"), required=False, queryset=None, empty_label=_("全部"))
    roll_status = forms.ChoiceField(label=_("学籍状态"), required=False)

    def limit_to_scope(self, user):
        super().limit_to_scope(user)
        classes = classes_for(user).select_related("department").order_by("department__name", "name")
        self.fields["class_group"].queryset = classes
        statuses = students_for(user).exclude(roll_status="").values_list("roll_status", flat=True).distinct()
        self.fields["roll_status"].choices = [("", _("全部"))] + [(status, status) for status in sorted(statuses)]

    def students(self) -> QuerySet[Student]:
        """The students the filters select; nobody when a filter cannot be read (a class out of scope)."""
        if self.is_bound and not self.is_valid():
            return student_list(fetched_by=self.user).none()
        data = self.cleaned_data if self.is_bound else {}
        return student_list(
            fetched_by=self.user,
            query=data.get("q") or "",
            class_group_id=getattr(data.get("class_group"), "pk", None),
            roll_status=data.get("roll_status") or "",
        )
