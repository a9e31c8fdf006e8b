from urllib.parse import urlsplit

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from students.forms import IdField, IdListField
from students.models import Cohort, Department
from verification.models import Campaign

from .channels import STAFF_USERID_FIELDS, USERID_FIELDS
from .models import DepartmentChannel, HelpArticle, Notice
from .services import MAX_DAYS_BEFORE, REQUEST_KEY

DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class NoticeForm(forms.ModelForm):
    campaign = forms.ModelChoiceField(
        label=_("核对活动"), queryset=Campaign.objects.order_by("-opens_at"), required=False
    )
    cohorts = forms.ModelMultipleChoiceField(
        label=_("面向年级"),
        queryset=Cohort.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("不选则面向全部年级"),
    )
    departments = forms.ModelMultipleChoiceField(
        label=_("面向院系"),
        queryset=Department.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("不选则面向全部院系"),
    )

    class Meta:
        model = Notice
        fields = ["title", "campaign", "deadline", "body", "cohorts", "departments"]
        widgets = {"deadline": DATETIME, "body": forms.Textarea(attrs={"rows": 12})}
        help_texts = {"deadline": _("不填则为核对活动的截止时间")}


class AttachmentForm(forms.Form):
    file = forms.FileField(
        label=_("附件"),
        help_text=_("PDF、Word（.docx）、Excel（.xlsx）、JPEG 或 PNG，不超过 20 MB。"),
        widget=forms.ClearableFileInput(
            attrs={"accept": ".pdf,.docx,.xlsx,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png"}
        ),
    )


class HelpArticleForm(forms.ModelForm):
    class Meta:
        model = HelpArticle
        fields = ["title", "slug", "keywords", "position", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 14})}
        help_texts = {
            "slug": _("网址中的英文标识，例如 phone-registered"),
            "keywords": _("学生可能搜索的词，用空格分隔"),
        }

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if slug == "articles":
            raise forms.ValidationError(_("这个标识已被系统使用"))
        return slug


class StageAddForm(forms.Form):
    days_before = forms.IntegerField(label=_("截止前天数"), min_value=1, max_value=MAX_DAYS_BEFORE)


class RemindNowForm(forms.Form):
    WHOLE_CLASS = "class"
    CHOSEN = "chosen"

    campaign = IdField()
    request_key = forms.RegexField(regex=REQUEST_KEY, widget=forms.HiddenInput)
    scope = forms.ChoiceField(
        label=_("提醒谁"),
        choices=[(CHOSEN, _("勾选的同学")), (WHOLE_CLASS, _("全班未完成核对的同学"))],
        widget=forms.RadioSelect,
        initial=CHOSEN,
    )
    students = IdListField(required=False, error_messages={"invalid": _("请选择学生")})


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("状态"),
        required=False,
        choices=[
            ("", _("全部")),
            ("pending", _("待发送")),
            ("sent", _("已发送")),
            ("failed", _("发送失败")),
            ("skipped", _("未发送")),
        ],
    )
    stage = forms.TypedChoiceField(label=_("提醒"), required=False, coerce=int, empty_value=None)
    q = forms.CharField(label=_("学号或姓名"), required=False, max_length=50)

    def __init__(self, *args, stages=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].choices = [("", _("全部"))] + [(stage.pk, stage_label(stage)) for stage in stages]


def stage_label(stage) -> str:
    """A reminder round as people name it: its kind and when it went out, in the school's time zone."""
    if stage.kind == stage.Kind.BEFORE_CLOSE:
        kind = ngettext("截止前 %(n)s 天", "截止前 %(n)s 天", stage.days_before) % {"n": stage.days_before}
    else:
        kind = stage.get_kind_display()
    return f"{kind} {timezone.localtime(stage.send_at):%Y-%m-%d %H:%M}"


ROBOT_HOSTS = {
    DepartmentChannel.Robot.WECOM: "qyapi.weixin.qq.com",
    DepartmentChannel.Robot.DINGTALK: "oapi.dingtalk.com",
}


class DepartmentChannelForm(forms.Form):
    robot = forms.ChoiceField(label=_("群机器人"), choices=DepartmentChannel.Robot.choices, required=False)
    webhook_url = forms.URLField(
        label=_("Webhook 地址"),
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=_("在群设置 → 群机器人中复制，以 https:// 开头；留空则保留已保存的地址。"),
    )
    signing_secret = forms.CharField(
        label=_("加签密钥"),
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("钉钉机器人开启“加签”时填写（以 SEC 开头）；留空则保留已保存的密钥。"),
    )
    clear_secret = forms.BooleanField(label=_("清除已保存的加签密钥"), required=False)

    def __init__(self, *args, saved_robot: str = "", **kwargs):
        # The saved address is never shown (it holds the robot's token): left empty, it is kept.
        self.saved_robot = saved_robot
        super().__init__(*args, **kwargs)

    def clean(self):
        cleaned = super().clean()
        robot, url = cleaned.get("robot"), cleaned.get("webhook_url")
        if robot:
            if not url:
                if robot == self.saved_robot:
                    return cleaned
                self.add_error("webhook_url", _("请填写 Webhook 地址"))
            else:
                parts = urlsplit(url)
                # The worker posts to this address: only the robot's own HTTPS host, nothing inside the campus.
                if parts.scheme != "https" or parts.hostname != ROBOT_HOSTS[robot]:
                    self.add_error(
                        "webhook_url",
                        _("地址应以 https://%(host)s/ 开头") % {"host": ROBOT_HOSTS[robot]},
                    )
        return cleaned


# The settings of each reminder channel on the registrar's 提醒渠道 page: (option key, label, help).
# What is not secret is kept in ChannelConfig.options; the one secret in ChannelConfig.secret, encrypted.
# The platforms' addresses are not here: the worker calls them with the secret, so only the official ones
# (or, for a private deployment, what an administrator sets as ``endpoint`` / ``api`` in the Django admin).
CHANNEL_OPTIONS = {
    "sms": [
        ("access_key_id", _("AccessKey ID（阿里云）"), ""),
        ("secret_id", _("SecretId（腾讯云）"), ""),
        ("sdk_app_id", _("SDK AppID（腾讯云，1400 开头）"), ""),
        ("sign_name", _("短信签名"), _("服务商审核通过的签名，例如学校简称")),
        ("template_id", _("模板 ID"), _("审核通过的模板；变量依次为姓名、截止时间、链接")),
        (
            "template_text",
            _("模板内容"),
            _("审核通过的模板原文（阿里云写 ${name} ${deadline} ${link}，腾讯云写 {1} {2} {3}），用于估算短信条数"),
        ),
        ("per_minute", _("每分钟最多发送条数"), _("服务商给本账号的发送频率上限；留空则用系统设置 SMS_PER_MINUTE")),
        ("region", _("地域"), _("留空则用默认地域")),
    ],
    "wecom": [
        ("corp_id", _("企业 ID（CorpID）"), ""),
        ("agent_id", _("应用 AgentId"), ""),
        ("userid_field", _("企业微信账号对应"), _("学生在企业微信中的账号（UserID）是哪一项，默认学号")),
        ("staff_userid_field", _("教师账号对应"), _("辅导员提醒：教师账号是哪一项；不选则教师只收电子邮件")),
    ],
    "dingtalk": [
        ("app_key", _("AppKey"), ""),
        ("agent_id", _("应用 AgentId"), ""),
        ("userid_field", _("钉钉账号对应"), _("学生在钉钉中的账号（userid）是哪一项，默认学号")),
        ("staff_userid_field", _("教师账号对应"), _("辅导员提醒：教师账号是哪一项；不选则教师只收电子邮件")),
    ],
}
# What each channel needs before it can be enabled (besides the secret), by SMS provider for SMS.
CHANNEL_REQUIRED = {
    "aliyun": ("access_key_id", "sign_name", "template_id"),
    "tencent": ("secret_id", "sdk_app_id", "sign_name", "template_id"),
    "wecom": ("corp_id", "agent_id"),
    "dingtalk": ("app_key", "agent_id"),
}
SECRET_LABELS = {
    "sms": _("AccessKey Secret（阿里云）/ SecretKey（腾讯云）"),
    "wecom": _("应用 Secret"),
    "dingtalk": _("AppSecret"),
}


class ReminderChannelForm(forms.Form):
    """One reminder channel's settings; the secret is write-only (never put back into the page)."""

    enabled = forms.BooleanField(label=_("启用"), required=False)
    position = forms.IntegerField(label=_("顺序"), min_value=1, max_value=99, help_text=_("数字小的先尝试"))

    def __init__(self, *args, name: str, config=None, **kwargs):
        self.name, self.config = name, config
        super().__init__(*args, **kwargs)
        if name == "sms":
            self.fields["provider"] = forms.ChoiceField(
                label=_("短信服务商"), choices=[("aliyun", _("阿里云短信")), ("tencent", _("腾讯云短信"))]
            )
            self.fields["night_sms_allowed"] = forms.BooleanField(
                label=_("允许夜间（22:00–08:00）发送短信"), required=False
            )
        for key, label, help_text in CHANNEL_OPTIONS.get(name, []):
            if key == "userid_field":
                field = forms.ChoiceField(label=label, choices=list(USERID_FIELDS.items()), help_text=help_text)
            elif key == "staff_userid_field":
                field = forms.ChoiceField(
                    label=label,
                    choices=[("", _("不用于教师")), *STAFF_USERID_FIELDS.items()],
                    required=False,
                    help_text=help_text,
                )
            elif key in ("agent_id", "per_minute"):
                field = forms.IntegerField(label=label, required=False, min_value=1, help_text=help_text)
            elif key == "template_text":
                field = forms.CharField(
                    label=label, required=False, max_length=500, help_text=help_text, widget=forms.Textarea({"rows": 3})
                )
            else:
                field = forms.CharField(label=label, required=False, max_length=200, help_text=help_text)
            self.fields[key] = field
        if name in SECRET_LABELS:
            self.fields["secret"] = forms.CharField(
                label=SECRET_LABELS[name],
                required=False,
                max_length=500,
                strip=True,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                help_text=_("已保存的密钥不会显示；留空则保留已保存的密钥。")
                if config and config.secret
                else _("保存后不再显示。"),
            )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("enabled") or self.name not in SECRET_LABELS:
            return cleaned
        required = CHANNEL_REQUIRED.get(cleaned.get("provider") if self.name == "sms" else self.name, ())
        for key in required:
            if cleaned.get(key) in (None, ""):
                self.add_error(key, _("启用前请填写此项"))
        if not cleaned.get("secret") and not (self.config and self.config.secret):
            self.add_error("secret", _("启用前请填写密钥"))
        return cleaned

    def option_keys(self) -> list[str]:
        return [key for key, _label, _help in CHANNEL_OPTIONS.get(self.name, [])]

    def options(self) -> dict:
        """The non-secret settings this page edits, as ChannelConfig.options keeps them (empty ones left out)."""
        return {
            key: self.cleaned_data[key] for key in self.option_keys() if self.cleaned_data.get(key) not in (None, "")
        }


class ChannelTestForm(forms.Form):
    to = forms.CharField(
        label=_("发给"), max_length=100, help_text=_("手机号码、企业微信 / 钉钉账号或电子邮箱，视渠道而定")
    )
