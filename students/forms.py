from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _


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
        help_text=_("学信网导出的 .xlsx 或 .csv（UTF-8 或 GBK），表头可用 XH、XM 等代码或中文名称。"),
    )
    dry_run = forms.BooleanField(label=_("只检查，不导入"), required=False)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.ROSTER_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("文件过大"))
        return upload
