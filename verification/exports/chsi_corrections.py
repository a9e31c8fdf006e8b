"""The CHSI correction list: what the registrar keys into the school-side platform, one sheet per authority.

Columns: XH, XM and SFZH (the CHSI codes identifying the student), 字段代码
(the corrected field's CHSI code, e.g. CSRQ), 字段, 原值 (the value on CHSI),
更正值 (the value to enter), 说明, 状态.  The one export that carries full ID
numbers: the platform needs them.  It lists what the correction queue shows
for the same filters, grouped (one sheet each) as the queue groups them.
"""

from django.db.models import IntegerField, Value
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from students import fields as roll_fields

from ..filters import CorrectionFilter
from ..models import Flag
from .base import Exporter, Sheet, choice_labels, ciphertext, decrypted_chunks, field_labels, text
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
        # Authority is configured per school (settings).  The rows of every sheet come from one stream (one
        # thread fetching ahead, base.fetched_chunks): a query per sheet, the next sheet's sorted by the server
        # while the rows of the one before are written (docs/performance.md §4).
        authorities = list(roll_fields.Authority)
        codes = {authority: [] for authority in authorities}
        for field in roll_fields.ROLL_FIELDS:
            codes[field.authority].append(field.code)
        flags = CorrectionFilter.flags_of(user, params)
        stream = self._rows(
            [
                flags.filter(field_code__in=codes[authority]).annotate(sheet=Value(i, output_field=IntegerField()))
                for i, authority in enumerate(authorities)
                if codes[authority]
            ]
        )
        pending = [next(stream, None)]  # the next (sheet, row) not yet written

        def rows_of(index):
            while pending[0] is not None and pending[0][0] == index:
                yield pending[0][1]
                pending[0] = next(stream, None)

        for index, authority in enumerate(authorities):
            if authority == roll_fields.Authority.NONE and (pending[0] is None or pending[0][0] != index):
                continue
            yield Sheet(str(authority.label), self.header(), rows_of(index), landscape=True)

    @staticmethod
    def _rows(pieces):
        # Only the columns written, the three encrypted ones decrypted a chunk at a time (docs/performance.md §4).
        statuses, labels = choice_labels(Flag.Status.choices), field_labels()
        pieces = [
            flags.select_related(None)
            .prefetch_related(None)
            .values_list(
                "checklist__student__student_number",
                "checklist__student__name",
                ciphertext("checklist__student__id_number"),
                "field_code",
                ciphertext("recorded_value"),
                ciphertext("claimed_value"),
                "explanation",
                "status",
                "sheet",
            )
            for flags in pieces
        ]
        for chunk, (id_numbers, recorded_values, claimed_values) in decrypted_chunks(pieces, (2, 4, 5)):
            for row, id_number, recorded, claimed in zip(
                chunk, id_numbers, recorded_values, claimed_values, strict=True
            ):
                number, name, _id, code, _recorded, _claimed, explanation, status, sheet = row
                yield (
                    sheet,
                    [
                        number,
                        name,
                        id_number,
                        code,
                        labels.get(code, code),
                        recorded,
                        claimed,
                        explanation,
                        statuses[status],
                    ],
                )
