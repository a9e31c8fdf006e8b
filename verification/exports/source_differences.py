"""Differences between CHSI and a second source: the same list as the comparison page.

Filtered to 学校系统有误, it is the list for the office that owns that system.
"""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from students.models import SourceResolution

from ..filters import SourceDifferenceFilter
from .base import Exporter, text
from .registry import register


@register
class SourceDifferences(Exporter):
    key = "source-differences"
    label = gettext_lazy("名单对照差异")
    capability = "roster.compare"
    form_class = SourceDifferenceFilter
    sheet_title = gettext_lazy("差异")
    landscape = True

    def title(self, user, params):
        return _("学信网与“%(source)s”对照差异") % {"source": params["source"].name}

    @property
    def columns(self):
        return [
            text(gettext_lazy("学号"), 14),
            text(gettext_lazy("字段"), 12),
            text(gettext_lazy("学信网"), 28),
            text(gettext_lazy("学校系统"), 28),
            text(gettext_lazy("处理"), 20),
        ]

    def scope_label(self, user, params):
        return params["source"].name

    def filename_parts(self, user, params):
        parts = [params["source"].name, _("对照差异")]
        if params.get("decision") and params["decision"] != "open":
            parts.append(str(SourceResolution.Decision(params["decision"]).label))
        return parts

    def estimate(self, user, params):
        return len(SourceDifferenceFilter.differences_of(user, params))

    def rows(self, user, params):
        decisions = dict(SourceResolution.Decision.choices)
        for d in SourceDifferenceFilter.differences_of(user, params):
            label = d.roll_field.label
            yield [d.student_number, str(label), d.chsi, d.source, str(decisions.get(d.decision, _("待处理")))]
