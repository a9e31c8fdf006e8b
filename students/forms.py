from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _


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
