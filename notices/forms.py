from urllib.parse import urlsplit

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from students.forms import IdField, IdListField
from students.models import Cohort, Department
from verification.models import Campaign

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
