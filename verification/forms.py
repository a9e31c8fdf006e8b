from django import forms
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from students import fields as roll_fields
from students.forms import IdField, IdListField
from students.models import Cohort, ImportFinding

from .evidence import MAX_FILES_PER_FLAG
from .models import Campaign, Checklist, Flag, SupportRequest


class VersionedForm(forms.Form):
    """Carries the record version the page showed, so a stale form can be refused."""

    record_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0, max_value=2**31 - 1)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/jpeg,image/png,application/pdf"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else ([data] if data else [])
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


def _evidence_help_text():
    # Formatted per request: "%" on a lazy string would translate it once, at import.
    return _("JPEG、PNG 或 PDF，每个不超过 10 MB，最多 %(n)s 个。") % {"n": MAX_FILES_PER_FLAG}


class FlagForm(VersionedForm):
    claimed_value = forms.CharField(label=_("正确的值"), max_length=200)
    explanation = forms.CharField(
        label=_("说明"),
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("简要说明哪里不对，例如“出生日期应与身份证一致”。"),
    )
    evidence = MultipleFileField(
        label=_("证明材料"),
        required=False,
        help_text=lazy(_evidence_help_text, str)(),
    )

    def __init__(self, *args, field: roll_fields.RollField, id_type: str, needs_evidence: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.roll_field, self.id_type, self.needs_evidence = field, id_type, needs_evidence
        claimed = self.fields["claimed_value"]
        claimed.label = _("正确的%(label)s") % {"label": field.label}
        if field.photo:
            # A photo has no "right value": the student says what is wrong with it and may bring a new one.
            self.fields["claimed_value"] = forms.ChoiceField(
                label=_("照片的问题"), choices=[("", "—")] + [(c, c) for c in field.choices]
            )
            explanation = self.fields["explanation"]
            explanation.required = True
            explanation.help_text = _("请说明照片哪里不对，例如“照片是其他同学的”。")
            if "evidence" in self.fields:
                self.fields["evidence"].label = _("新照片（可选）")
        elif field.choices:
            self.fields["claimed_value"] = forms.ChoiceField(
                label=claimed.label, choices=[("", "—")] + [(c, c) for c in field.choices]
            )
        elif field.is_date:
            claimed.widget = forms.DateInput(attrs={"type": "date"})
            claimed.help_text = _("例如 2006-03-14")
        if not needs_evidence and not field.photo:
            del self.fields["evidence"]

    def clean_claimed_value(self):
        try:
            return self.roll_field.clean_claim(self.cleaned_data["claimed_value"], id_type=self.id_type)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        if self.needs_evidence and not cleaned.get("evidence") and not self.initial.get("has_evidence"):
            self.add_error("evidence", _("身份信息的更正需要上传证明材料"))
        return cleaned


class ConfirmAllForm(VersionedForm):
    attest = forms.BooleanField(
        label=_("我已在学信网逐项核对本人学籍信息，以上信息全部正确。"),
        error_messages={"required": _("请勾选确认声明")},
    )


class ConfirmRestForm(VersionedForm):
    """其余全部正确: offered once some field is flagged, so the student need not tap 正确 on every other row."""

    attest = forms.BooleanField(
        label=_("我已在学信网逐项核对本人学籍信息，除已报错的项目外，其余信息全部正确。"),
        error_messages={"required": _("请勾选确认声明")},
    )


class SupportRequestForm(forms.Form):
    note = forms.CharField(
        label=_("补充说明（可选）"), required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 3})
    )


def _field_code_choices():
    return [
        (f.code, _("%(name)s（%(code)s）") % {"name": f.label, "code": f.code})
        for f in roll_fields.CHECKABLE_FIELDS
        if f.student_check != roll_fields.StudentCheck.HIDDEN
    ]


class CampaignForm(forms.ModelForm):
    cohorts = forms.ModelMultipleChoiceField(
        label=_("年级"), queryset=Cohort.objects.all(), widget=forms.CheckboxSelectMultiple
    )
    field_codes = forms.MultipleChoiceField(
        label=_("学生核对的字段"),
        widget=forms.CheckboxSelectMultiple,
        # A callable: the labels are translated per request, not once at import.
        choices=_field_code_choices,
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "kind",
            "cohorts",
            "opens_at",
            "closes_at",
            "departments_close_at",
            "registrar_close_at",
            "instructions",
            "field_codes",
        ]
        labels = {"closes_at": _("学生核对截止")}
        help_texts = {
            "departments_close_at": _(
                "院系审核、汇总并确认提交的截止时间；被退回的报错学生可修改至此。留空则为学生截止后 2 天。"
            ),
            "registrar_close_at": _("学籍科向上级报送的截止时间。留空则为院系截止后 3 天。"),
        }
        widgets = {
            "opens_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "closes_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "departments_close_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "registrar_close_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "instructions": forms.Textarea(attrs={"rows": 4}),
        }

    def clean(self):
        cleaned = super().clean()
        opens, closes = cleaned.get("opens_at"), cleaned.get("closes_at")
        if opens and closes and closes <= opens:
            self.add_error("closes_at", _("截止时间必须晚于开始时间"))
        departments, registrar = cleaned.get("departments_close_at"), cleaned.get("registrar_close_at")
        if closes and departments and departments < closes:
            self.add_error("departments_close_at", _("院系汇总截止不能早于学生核对截止"))
        if registrar and (departments or closes) and registrar < (departments or closes):
            self.add_error("registrar_close_at", _("学籍科上报截止不能早于院系汇总截止"))
        return cleaned


SUPPORT_KINDS = {kind.value: kind for kind in SupportRequest.Kind}


class ProxyConfirmAllForm(VersionedForm):
    """全部正确 recorded by staff from a signed paper form: the version is required, so a stale page is refused."""

    attest = forms.BooleanField(error_messages={"required": _("请确认学生已在纸质登记表上签字。")})


class WorkspaceQueryForm(forms.Form):
    """The query string of the workspace pages.  A value that cannot be read is "not found" (404)."""

    campaign = IdField(required=False)
    department = IdField(required=False)
    status = forms.ChoiceField(required=False, choices=Flag.Status.choices)
    kind = forms.ChoiceField(required=False, choices=ImportFinding.Kind.choices)


class FlagPickForm(forms.Form):
    """The flags ticked in a review queue."""

    flags = IdListField(required=False)


class ExtensionForm(forms.Form):
    """An individual extension of the students' deadline, from a student's record page."""

    until = forms.DateTimeField(
        label=_("个人延期至"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("留空则取消个人延期"),
    )
    note = forms.CharField(label=_("原因（如病假、出国）"), required=False, max_length=200)


class ExclusionForm(forms.Form):
    reason = forms.ChoiceField(label=_("不参加原因"), choices=Checklist.Exclusion.choices)
    note = forms.CharField(label=_("说明"), required=False, max_length=200)


class InclusionForm(forms.Form):
    reason = forms.ChoiceField(label=_("加入原因"), choices=Checklist.Inclusion.choices)


class SignOffForm(forms.Form):
    department = IdField()
    remark = forms.CharField(label=_("备注"), required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))


class SignOffWithdrawForm(forms.Form):
    reason = forms.CharField(label=_("撤回原因"), max_length=1000)
