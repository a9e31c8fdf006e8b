"""A campaign's records (every checklist, answer and flag; ID numbers masked), kept before retention deletes them."""

from django import forms
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..models import Campaign, Checklist, Evidence, FieldCheck, Flag
from .base import (
    Exporter,
    ExportForm,
    Sheet,
    choice_labels,
    ciphertext,
    datetime_,
    decrypted_chunks,
    fetched_streams,
    field_labels,
    number,
    text,
    value_masker,
)
from .registry import register


class CampaignForm(ExportForm):
    campaign = forms.ModelChoiceField(label=gettext_lazy("核对活动"), queryset=None)

    def limit_to_scope(self, user):
        self.fields["campaign"].queryset = Campaign.objects.all()


@register
class CampaignRecords(Exporter):
    key = "campaign-records"
    label = gettext_lazy("核对活动全部记录")
    capability = "export.school_lists"
    form_class = CampaignForm

    def title(self, user, params):
        return _("%(campaign)s 核对记录") % {"campaign": params["campaign"].name}

    def scope_label(self, user, params):
        return params["campaign"].name

    def filename_parts(self, user, params):
        return [params["campaign"].name, _("核对记录")]

    def estimate(self, user, params):
        return Checklist.objects.filter(campaign=params["campaign"]).count()

    def sheets(self, user, params):
        campaign = params["campaign"]
        states = choice_labels(Checklist.State.choices)
        checklists = (
            Checklist.objects.filter(campaign=campaign)
            .order_by("student__student_number")
            .values_list(
                "student__student_number", "student__name", "student__department__name", "student__class_name",
                "state", "attested_at", "finished_at", "last_activity_at",
            )
        )  # fmt: skip
        # Students out of this campaign (休学, 参军入伍 …), apart: they are not in the rates.
        reasons = choice_labels(Checklist.Exclusion.choices)
        excluded = (
            Checklist.objects.filter(campaign=campaign, state=Checklist.State.EXCLUDED)
            .order_by("student__student_number")
            .values_list(
                "student__student_number", "student__name", "student__department__name", "student__class_name",
                "excluded_reason", "excluded_note",
            )
        )  # fmt: skip
        answer_labels = choice_labels(FieldCheck.Status.choices)
        answers = (
            FieldCheck.objects.filter(checklist__campaign=campaign)
            .order_by("checklist__student__student_number", "field_code")
            .values_list(
                "checklist__student__student_number", "field_code", "status", "seen_value", "answered_at",
                "answered_by__username", "is_proxy",
            )
        )  # fmt: skip
        # Every sheet's rows from one thread fetching ahead: the next sheet's query runs while one is written.
        checklist_chunks, excluded_chunks, answer_chunks, flag_chunks = fetched_streams(
            [checklists, excluded, answers, self._flags(campaign)]
        )
        yield Sheet(
            _("核对记录"),
            [
                text(_("学号"), 14),
                text(_("姓名"), 10),
                text(_("院系"), 14),
                text(_("班级"), 12),
                text(_("状态"), 14),
                datetime_(_("确认全部正确时间")),
                datetime_(_("完成时间")),
                datetime_(_("最近操作")),
            ],
            (
                [number_, name, dept, cls, states[state], attested, finished, active]
                for chunk in checklist_chunks
                for number_, name, dept, cls, state, attested, finished, active in chunk
            ),
            landscape=True,
        )
        yield Sheet(
            _("不参加核对"),
            [
                text(_("学号"), 14),
                text(_("姓名"), 10),
                text(_("院系"), 14),
                text(_("班级"), 12),
                text(_("原因"), 14),
                text(_("说明"), 30),
            ],
            (
                [number_, name, dept, cls, reasons.get(reason, reason), note]
                for chunk in excluded_chunks
                for number_, name, dept, cls, reason, note in chunk
            ),
        )
        yes, labels = _("是"), field_labels()
        yield Sheet(
            _("逐项核对"),
            [
                text(_("学号"), 14),
                text(_("字段"), 12),
                text(_("结果"), 14),
                text(_("核对时的值"), 22),
                datetime_(_("核对时间")),
                text(_("操作人"), 14),
                text(_("代为登记"), 8),
            ],
            (
                [
                    student_number,
                    labels.get(code, code),
                    answer_labels.get(status, status),
                    seen,
                    at,
                    by or "",
                    yes if proxy else "",
                ]
                for chunk in answer_chunks
                for student_number, code, status, seen, at, by, proxy in chunk
            ),
        )
        yield Sheet(
            _("报错"),
            [
                text(_("学号"), 14),
                text(_("字段"), 12),
                text(_("学信网上的值"), 21),
                text(_("正确的值"), 21),
                text(_("说明"), 30),
                text(_("状态"), 20),
                number(_("证明材料数"), 8),
                datetime_(_("提交时间")),
            ],
            self._flag_rows(flag_chunks),
            landscape=True,
        )

    @staticmethod
    def _flags(campaign):
        evidence_counts = (
            Evidence.objects.filter(flag=OuterRef("pk")).order_by().values("flag").annotate(n=Count("*")).values("n")
        )
        # Only the columns written, the encrypted ones as stored (decrypted a chunk at a time).
        return (
            Flag.objects.filter(checklist__campaign=campaign)
            .annotate(evidence_count=Coalesce(Subquery(evidence_counts, output_field=IntegerField()), 0))
            .order_by("checklist__student__student_number", "field_code", "created_at")
            .values_list(
                "checklist__student__student_number", "field_code", ciphertext("recorded_value"),
                ciphertext("claimed_value"), "explanation", "status", "evidence_count", "created_at",
            )
        )  # fmt: skip

    @staticmethod
    def _flag_rows(chunks):
        statuses, labels, masked = choice_labels(Flag.Status.choices), field_labels(), value_masker()
        for chunk, (recorded_values, claimed_values) in decrypted_chunks(chunks, (2, 3)):
            for row, recorded, claimed in zip(chunk, recorded_values, claimed_values, strict=True):
                student_number, code, _recorded, _claimed, explanation, status, evidence_count, created_at = row
                yield [
                    student_number,
                    labels.get(code, code),
                    masked(code, recorded),
                    masked(code, claimed),
                    explanation,
                    statuses.get(status, status),
                    evidence_count,
                    created_at,
                ]
