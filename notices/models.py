from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from students.crypto import EncryptedTextField, IdMaskedCharField
from students.models import Cohort, Department, Student
from verification.models import Campaign


class Notice(models.Model):
    """A 通知 for a campaign: what to do and by when."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, null=True, blank=True, related_name="notices", verbose_name=_("核对活动")
    )
    title = models.CharField(_("标题"), max_length=200)
    body = models.TextField(_("正文"), help_text=_("支持 Markdown：**加粗**、列表、链接。"))
    deadline = models.DateTimeField(_("截止时间"), null=True, blank=True)
    cohorts = models.ManyToManyField(Cohort, blank=True, verbose_name=_("面向年级"), help_text=_("不选则面向全部年级"))
    departments = models.ManyToManyField(
        Department, blank=True, verbose_name=_("面向院系"), help_text=_("不选则面向全部院系")
    )
    published_at = models.DateTimeField(_("发布时间"), null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_at", "-created_at"]
        verbose_name = _("通知")
        verbose_name_plural = _("通知")

    def __str__(self):
        return self.title

    @property
    def is_published(self) -> bool:
        return self.published_at is not None and self.published_at <= timezone.now()


class NoticeAttachment(models.Model):
    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="attachments")
    storage_name = models.CharField(max_length=100, unique=True, editable=False)
    original_name = models.CharField(_("文件名"), max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("通知附件")
        verbose_name_plural = _("通知附件")

    def __str__(self):
        return self.original_name


class NoticeRead(models.Model):
    """A student has opened a notice; counted once."""

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="reads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["notice", "user"], name="notice_read_once")]
        verbose_name = _("阅读记录")
        verbose_name_plural = _("阅读记录")

    def __str__(self):
        return f"{self.notice_id}/{self.user_id}"


class HelpArticle(models.Model):
    """A help-centre entry for the problems every notice repeats (docs/domain.md §7)."""

    slug = models.SlugField(_("标识"), max_length=64, unique=True)
    title = models.CharField(_("标题"), max_length=200)
    body = models.TextField(_("正文"), help_text=_("支持 Markdown。"))
    keywords = models.CharField(_("关键词"), max_length=300, blank=True)
    position = models.PositiveSmallIntegerField(_("排序"), default=100)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("帮助文章")
        verbose_name_plural = _("帮助文章")

    def __str__(self):
        return self.title


class Message(models.Model):
    """An in-portal message to one user (e.g. a flag of theirs changed state)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages")
    # May quote a reviewer's note: any ID number in it is written masked.
    text = IdMaskedCharField(_("内容"), max_length=500)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "read_at"])]
        verbose_name = _("站内消息")
        verbose_name_plural = _("站内消息")

    def __str__(self):
        return self.text[:40]


class ReminderStage(models.Model):
    """One step of a campaign's reminder plan, found due from the database by the dispatcher."""

    class Kind(models.TextChoices):
        OPENS = "opens", _("活动开始时")
        BEFORE_CLOSE = "before_close", _("截止前若干天")
        LAST_DAY = "last_day", _("截止当天")
        MANUAL = "manual", _("立即提醒")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="reminder_stages")
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices)
    days_before = models.PositiveSmallIntegerField(_("截止前天数"), default=0)
    send_at = models.DateTimeField(_("发送时间"))
    dispatched_at = models.DateTimeField(_("已派发于"), null=True, blank=True)
    # For a manual reminder: exactly whom it was for (student ids), fixed when sent.
    student_ids = models.JSONField(default=list, blank=True)
    # A form's one-time key: a double submit of "remind now" creates one stage.
    request_key = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["send_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "kind", "days_before"],
                condition=~Q(kind="manual"),
                name="reminder_stage_plan_unique",
            ),
            models.UniqueConstraint(
                fields=["request_key"], condition=~Q(request_key=""), name="reminder_stage_request_once"
            ),
        ]
        indexes = [models.Index(fields=["dispatched_at", "send_at"])]
        verbose_name = _("提醒")
        verbose_name_plural = _("提醒计划")

    def __str__(self):
        return f"{self.campaign_id} {self.get_kind_display()} {timezone.localtime(self.send_at):%Y-%m-%d %H:%M}"


class SendStatus(models.TextChoices):
    PENDING = "pending", _("待发送")
    SENDING = "sending", _("发送中")
    SENT = "sent", _("已发送")
    FAILED = "failed", _("发送失败")
    SKIPPED = "skipped", _("未发送")


class OutboxRow(models.Model):
    """One message to one recipient on one channel, as the outbox (notices/outbox.py) sends it.

    Each kind of message has its own table (a unique constraint there says
    "at most once per recipient"); the claim, lease, retry and requeue columns
    are these, shared, so one code path sends them all.  ``channel`` is the
    name of a channel in ``notices.outbox.CHANNELS``: no choices here, so a new
    channel needs no migration.
    """

    Status = SendStatus

    channel = models.CharField(_("渠道"), max_length=16)
    status = models.CharField(_("状态"), max_length=16, choices=SendStatus.choices, default=SendStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(_("发送时间"), null=True, blank=True)
    last_error = models.TextField(_("原因"), blank=True)

    class Meta:
        abstract = True

    @property
    def channel_label(self) -> str:
        from .outbox import CHANNELS

        channel = CHANNELS.get(self.channel)
        return str(channel.label) if channel else self.channel


class Delivery(OutboxRow):
    """One reminder to one student on one channel: unique, so it is sent at most once."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("电子邮件")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    stage = models.ForeignKey(ReminderStage, on_delete=models.CASCADE, related_name="deliveries")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(_("渠道"), max_length=16, default=Channel.EMAIL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "student", "stage", "channel"], name="delivery_once_per_stage_channel"
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["stage", "status"]),
            # The SMS minute budget counts a channel's claims of the last minute (notices/outbox.py).
            models.Index(fields=["channel", "claimed_at"], name="delivery_channel_claims"),
        ]
        verbose_name = _("提醒发送")
        verbose_name_plural = _("提醒发送")

    def __str__(self):
        return f"{self.stage_id}/{self.student_id} {self.status}"


class Notification(OutboxRow):
    """One message to one student about one event of theirs (a returned flag closed …), on one channel.

    ``key`` names the event: unique with the student and the channel, so a job run twice tells them once.
    Reminders have their own table (``Delivery``): they are written in bulk per stage.
    """

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=100)
    subject = models.CharField(_("标题"), max_length=200)
    # May quote a reviewer's note: any ID number in it is written masked.
    body = IdMaskedCharField(_("内容"), max_length=1000)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["student", "key", "channel"], name="notification_once_per_channel")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due")]
        verbose_name = _("学生通知发送")
        verbose_name_plural = _("学生通知发送")

    def __str__(self):
        return f"{self.student_id} {self.key} {self.status}"


class StaffReminder(OutboxRow):
    """One stage's reminder to one member of staff (WeCom / DingTalk or e-mail): a counsellor, at the departments' stage, is told
    who in their classes has not finished.  Unique per (campaign, user, stage), so a job run twice sends once."""

    class Stage(models.TextChoices):
        DEPARTMENTS = "departments", _("院系汇总截止")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    stage = models.CharField(_("阶段"), max_length=16, choices=Stage.choices)
    channel = models.CharField(_("渠道"), max_length=16, default="email")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # One row per channel tried (WeCom / DingTalk, then e-mail as the fallback); staff_reminders writes
            # the first only when the counsellor has none for the stage, so the stage still reminds once.
            models.UniqueConstraint(
                fields=["campaign", "user", "stage", "channel"], name="staff_reminder_once_per_stage_channel"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="staff_reminder_due")]
        verbose_name = _("教师提醒发送")
        verbose_name_plural = _("教师提醒发送")

    def __str__(self):
        return f"{self.campaign_id}/{self.user_id} {self.stage} {self.status}"


class DepartmentChannel(models.Model):
    """Where a department's daily digest goes besides its secretaries' e-mail."""

    class Robot(models.TextChoices):
        NONE = "", _("不使用")
        WECOM = "wecom", _("企业微信群机器人")
        DINGTALK = "dingtalk", _("钉钉群机器人")

    department = models.OneToOneField(Department, on_delete=models.CASCADE, related_name="channel")
    robot = models.CharField(_("群机器人"), max_length=16, choices=Robot.choices, blank=True)
    # Both hold the robot's credentials (the URL carries its access token): encrypted at rest like ID numbers.
    webhook_url = EncryptedTextField(_("Webhook 地址"), blank=True)
    signing_secret = EncryptedTextField(_("加签密钥"), blank=True)

    class Meta:
        verbose_name = _("院系通知渠道")
        verbose_name_plural = _("院系通知渠道")

    def __str__(self):
        return f"{self.department} {self.robot}"


class Digest(models.Model):
    """A department's daily Excel of unverified students, kept for download."""

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="digests")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("日期"))
    storage_name = models.CharField(max_length=100, blank=True, editable=False)
    row_count = models.PositiveIntegerField(_("未完成人数"), default=0)
    total = models.PositiveIntegerField(_("学生人数"), default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "department__name"]
        constraints = [models.UniqueConstraint(fields=["department", "campaign", "day"], name="digest_once_a_day")]
        verbose_name = _("院系日报")
        verbose_name_plural = _("院系日报")

    def __str__(self):
        return f"{self.department} {self.day}"


class DigestDelivery(OutboxRow):
    """One digest to one secretary's e-mail or to the department's group robot.

    A robot's ``recipient`` is ``robots.recipient_key(url)``, a keyed hash:
    the webhook URL holds the robot's token and is only stored encrypted, on
    DepartmentChannel.  Departments sharing one group robot share one key, so
    its minute budget is counted across them.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", _("电子邮件")
        ROBOT = "robot", _("群机器人")

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="deliveries")
    recipient = models.CharField(max_length=254)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["digest", "channel", "recipient"], name="digest_delivery_once")]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        verbose_name = _("日报发送")
        verbose_name_plural = _("日报发送")

    def __str__(self):
        return f"{self.digest_id} {self.channel} {self.status}"


class ChannelConfig(models.Model):
    """How the school reaches students on one reminder channel (notices/channels.py), in the school's order.

    ``options`` holds what is not secret (key ids, sign name, template id, corp id, agent id …);
    ``secret`` (an AccessKey secret, an app secret) is encrypted at rest and never shown back in full.
    With no row enabled, ``settings.REMINDER_CHANNELS`` gives the order.
    """

    class Provider(models.TextChoices):
        NONE = "", _("—")
        ALIYUN = "aliyun", _("阿里云短信")
        TENCENT = "tencent", _("腾讯云短信")

    name = models.CharField(_("渠道"), max_length=16, unique=True)
    enabled = models.BooleanField(_("启用"), default=False)
    position = models.PositiveSmallIntegerField(_("顺序"), default=100)
    provider = models.CharField(_("短信服务商"), max_length=16, choices=Provider.choices, blank=True)
    options = models.JSONField(_("设置"), default=dict, blank=True)
    secret = EncryptedTextField(_("密钥"), blank=True)
    # SMS only: the registrar may allow sending between 22:00 and 08:00 (an urgent last day).
    night_sms_allowed = models.BooleanField(_("允许夜间（22:00–08:00）发送短信"), default=False)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("提醒渠道")
        verbose_name_plural = _("提醒渠道")

    def __str__(self):
        return self.name


class WebhookEndpoint(models.Model):
    """A campus system's URL that receives signed events (a flag changed status …) through the outbox."""

    class Event(models.TextChoices):
        FLAG_STATUS_CHANGED = "flag.status_changed", _("报错状态变化")
        DEPARTMENT_SIGNED_OFF = "department.signed_off", _("院系确认提交")
        SIGN_OFF_WITHDRAWN = "department.sign_off_withdrawn", _("院系确认提交被撤回")

    name = models.CharField(_("名称"), max_length=100)
    # Encrypted at rest like ID numbers: a URL may carry a token, and the secret signs every delivery.
    url = EncryptedTextField(_("地址"))
    secret = EncryptedTextField(_("签名密钥"))
    events = models.JSONField(_("事件"), default=list)
    is_active = models.BooleanField(_("启用"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("Webhook 地址")
        verbose_name_plural = _("Webhook 地址")

    def __str__(self):
        return self.name


class WebhookDelivery(OutboxRow):
    """One event to one endpoint: unique per (endpoint, event key), so an event is posted once."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(_("事件"), max_length=40)
    key = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "key"], name="webhook_delivery_once")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]
        verbose_name = _("Webhook 投递")
        verbose_name_plural = _("Webhook 投递")

    def __str__(self):
        return f"{self.endpoint_id} {self.event} {self.status}"
