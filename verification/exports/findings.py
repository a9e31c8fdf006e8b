"""The data-quality findings of the roster import: the same list as the data-quality page."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from students.models import ImportFinding

from ..filters import FindingFilter
from .base import Exporter, choice_labels, fetched_rows, field_labels, text
from .registry import register


@register
class Findings(Exporter):
    key = "findings"
    label = gettext_lazy("数据问题清单")
    capability = "export.school_lists"
    form_class = FindingFilter
    sheet_title = gettext_lazy("数据问题")
    landscape = True
    columns = [
        text(gettext_lazy("院系"), 14),
        text(gettext_lazy("班级"), 12),
        text(gettext_lazy("学号"), 14),
        text(gettext_lazy("姓名"), 10),
        text(gettext_lazy("字段"), 12),
        text(gettext_lazy("类型"), 20),
        text(gettext_lazy("说明"), 50),
    ]

    def title(self, user, params):
        title = _("学籍数据问题清单")
        if params.get("finding_kind"):
            title = f"{title} · {ImportFinding.Kind(params['finding_kind']).label}"
        return title

    def scope_label(self, user, params):
        return FindingFilter.scope_label_of(user, params)

    def filename_parts(self, user, params):
        parts = [FindingFilter.departments_of(user, params)[1], _("数据问题清单")]
        if params.get("finding_kind"):
            parts.append(str(ImportFinding.Kind(params["finding_kind"]).label))
        return parts

    def estimate(self, user, params):
        return FindingFilter.findings_of(user, params).count()

    def rows(self, user, params):
        kinds, labels = choice_labels(ImportFinding.Kind.choices), field_labels()
        rows = FindingFilter.findings_of(user, params).values_list(
            "student__department__name",
            "student__class_name",
            "student__student_number",
            "student__name",
            "field_code",
            "kind",
            "message",
        )
        for dept, cls, number, name, code, kind, message in fetched_rows(rows):
            yield [dept, cls, number, name, labels.get(code, code), kinds.get(kind, kind), message]
