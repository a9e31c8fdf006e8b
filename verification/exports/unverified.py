"""Students who have not finished their check: a department's (or a class's) list, and the daily digest."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..filters import UnverifiedFilter
from ..models import Checklist
from .base import Exporter, by_department, choice_labels, fetched_rows, text
from .registry import register


@register
class UnverifiedStudents(Exporter):
    key = "unverified"
    label = gettext_lazy("未完成核对学生名单")
    capability = "export.department_lists"
    form_class = UnverifiedFilter
    sheet_title = gettext_lazy("未完成核对")
    columns = [
        text(gettext_lazy("院系"), 14),
        text(gettext_lazy("班级"), 12),
        text(gettext_lazy("学号"), 14),
        text(gettext_lazy("姓名"), 10),
        text(gettext_lazy("状态"), 14),
        text(gettext_lazy("联系电话"), 14),
    ]

    def title(self, user, params):
        return _("%(campaign)s 未完成核对学生名单") % {"campaign": params["campaign"].name}

    def scope_label(self, user, params):
        return f"{params['campaign'].name} · {UnverifiedFilter.scope_label_of(user, params)}"

    def filename_parts(self, user, params):
        where = (
            params["class_group"].name
            if params.get("class_group")
            else UnverifiedFilter.departments_of(user, params)[1]
        )
        return [where, _("未完成核对名单")]

    def estimate(self, user, params):
        return UnverifiedFilter.checklists_of(user, params).count()

    def rows(self, user, params):
        states = choice_labels(Checklist.State.choices)
        rows = UnverifiedFilter.checklists_of(user, params).values_list(
            "student__department__name",
            "student__class_name",
            "student__student_number",
            "student__name",
            "state",
            "student__phone",
        )
        if not params.get("class_group"):
            # One query per department, the next sorted while the one before is written (fetched_chunks).
            rows = by_department(rows, "student__department", UnverifiedFilter.departments_of(user, params)[0])
        for dept, cls, number, name, state, phone in fetched_rows(rows):
            yield [dept, cls, number, name, states[state], phone]
