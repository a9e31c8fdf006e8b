from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from . import fields as roll_fields
from .importers import ENCODINGS
from .models import RosterPreset

# The largest id a database integer column holds: a larger one in a URL is "not found", not an overflow.
MAX_ID = 2**31 - 1


def parse_id(value) -> int | None:
    """A record id from request input, or None: only ASCII digits (int() also reads "٣"; "²" passes
    str.isdigit() and then crashes int()), within the database's integer range."""
    text = str(value).strip() if value is not None else ""
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


class IdField(forms.IntegerField):
    """One record id from a query string or a form."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        number = parse_id(value)
        if number is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return number


class IdListField(forms.Field):
    """Record ids from checkboxes; whether they may be used is the service's question."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": _("请选择有效的记录")}

    def to_python(self, value):
        values = value if isinstance(value, (list, tuple)) else ([value] if value else [])
        numbers = [parse_id(item) for item in values]
        if None in numbers:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return numbers


class RevealIdForm(forms.Form):
    reason = forms.CharField(
        label=_("查看完整证件号码的原因"),
        min_length=4,
        max_length=300,
        help_text=_("例如：学信网更正需要核对完整证件号码。原因和你的姓名会记入访问日志。"),
    )


class RosterUploadForm(forms.Form):
    file = forms.FileField(
        label=_("名单文件"),
        help_text=_(
            "学信网或招生部门导出的 .xlsx、.xls、.dbf，或 .csv/制表符分隔文本（UTF-8、UTF-16 或 GBK）；"
            "表头可用 XH、XM 等代码或中文名称。"
        ),
    )
    encoding = forms.ChoiceField(
        label=_("文本编码"),
        required=False,
        choices=[("", _("自动识别"))] + [(name, name.upper()) for name in ENCODINGS],
        help_text=_("仅在 DBF 或文本文件的中文显示为乱码时选择。"),
    )
    source = forms.CharField(
        label=_("对照名单名称"),
        required=False,
        max_length=64,
        help_text=_(
            "留空即导入学信网名单；填写名称（如“教务系统”）则作为学校自有名单导入，只用于对照，不改动学信网数据。"
        ),
    )
    preset = forms.ModelChoiceField(
        label=_("列对应预设"),
        required=False,
        queryset=RosterPreset.objects.all(),
        empty_label=_("不使用"),
        help_text=_("来自同一系统的文件表头不标准时，选择上次保存的列对应关系。"),
    )
    full = forms.BooleanField(
        label=_("完整名单"),
        required=False,
        help_text=_("文件包含所涉年级的全部学生：其中缺少的学生会标为“不在最新名单中”，由学籍科确认（不会删除）。"),
    )
    dry_run = forms.BooleanField(label=_("只检查，不导入"), required=False)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.ROSTER_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("文件过大"))
        return upload


def _mapping_choices():
    fields = [(f.key, f"{f.label}（{f.code}）") for f in roll_fields.ROLL_FIELDS]
    contact = [("phone", _("手机号码")), ("email", _("电子邮箱"))]
    return [("", _("忽略此列"))] + fields + contact


class ColumnMappingForm(forms.Form):
    """Which field each unrecognised header holds; saved as a preset for the next file from the same source."""

    preset_name = forms.CharField(
        label=_("保存为预设"),
        required=False,
        max_length=64,
        help_text=_("填写名称（如“教务系统导出”），下次导入同一来源的文件时可直接选用。"),
    )

    def __init__(self, *args, headers: list[str], initial_mapping: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.headers = headers
        initial_mapping = initial_mapping or {}
        for index, header in enumerate(headers):
            self.fields[f"column_{index}"] = forms.ChoiceField(
                label=header,
                required=False,
                choices=_mapping_choices(),
                initial=initial_mapping.get(roll_fields.header_key(header), ""),
            )

    def clean(self):
        cleaned = super().clean()
        chosen = [cleaned.get(f"column_{i}") for i in range(len(self.headers))]
        taken = [key for key in chosen if key]
        if len(taken) != len(set(taken)):
            raise forms.ValidationError(_("同一个字段只能对应一列"))
        return cleaned

    def mapping(self) -> dict:
        return {
            roll_fields.header_key(header): self.cleaned_data.get(f"column_{index}") or ""
            for index, header in enumerate(self.headers)
        }
