"""The CHSI correction list: what the registrar keys into the school-side platform, one sheet per authority.

Columns: XH, XM and SFZH (the CHSI codes identifying the student), 字段代码
(the corrected field's CHSI code, e.g. CSRQ), 字段, 原值 (the value on CHSI),
更正值 (the value to enter), 说明, 状态.  The one export that carries full ID
numbers: the platform needs them.  It lists what the correction queue shows
for the same filters, grouped (one sheet each) as the queue groups them.
"""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from students import fields as roll_fields

from ..filters import CorrectionFilter
from ..models import Flag
from .base import Exporter, Sheet, field_label, text
from .registry import register


@register
class CHSICorrectionList(Exporter):
    key = "chsi-corrections"
    label = gettext_lazy("学信网更正清单")
    capability = "export.school_lists"
    form_class = CorrectionFilter

    @staticmethod
    def header():
        # XH, XM and SFZH are CHSI's codes and stay as they are; the rest are labels.
        return [
            text("XH", 14),
            text("XM", 10),
            text("SFZH", 21),
            text(_("字段代码"), 8),
            text(_("字段"), 12),
            text(_("原值"), 21),
            text(_("更正值"), 21),
            text(_("说明"), 30),
            text(_("状态"), 20),
        ]

    def _qualifiers(self, params) -> list[str]:
        parts = []
        if params.get("campaign"):
            parts.append(params["campaign"].name)
        if params.get("status"):
            parts.append(str(Flag.Status(params["status"]).label))
        return parts

    def title(self, user, params):
        return " · ".join([_("学信网学籍信息更正清单"), *self._qualifiers(params)])

    def scope_label(self, user, params):
        parts = [params["campaign"].name] if params.get("campaign") else []
        parts.append(_("全校"))
        if params.get("status"):
            parts.append(str(Flag.Status(params["status"]).label))
        return " · ".join(parts)

    def filename_parts(self, user, params):
        return [_("学信网更正清单"), *self._qualifiers(params)]

    def estimate(self, user, params):
        return CorrectionFilter.flags_of(user, params).count()

    def sheets(self, user, params):
        # Authority is configured per school (settings): split by field code and stream
        # each sheet with its own query instead of holding every flag.
        codes = {authority: [] for authority in roll_fields.Authority}
        for field in roll_fields.ROLL_FIELDS:
            codes[field.authority].append(field.code)
        for authority in roll_fields.Authority:
            flags = CorrectionFilter.flags_of(user, params).filter(field_code__in=codes[authority])
            if authority == roll_fields.Authority.NONE and not flags.exists():
                continue
            yield Sheet(str(authority.label), self.header(), self._rows(flags), landscape=True)

    @staticmethod
    def _rows(flags):
        for f in flags.iterator(chunk_size=2000):
            student = f.checklist.student
            yield [
                student.student_number,
                student.name,
                student.id_number,
                f.field_code,
                field_label(f.field_code),
                f.recorded_value,
                f.claimed_value,
                f.explanation,
                f.get_status_display(),
            ]
