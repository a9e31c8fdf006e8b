from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

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
    """A help-centre entry for the problems every notice repeats (DOMAIN.md §7)."""

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
    text = models.CharField(_("内容"), max_length=500)
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
        return f"{self.campaign_id} {self.get_kind_display()} {self.send_at:%Y-%m-%d %H:%M}"


class Delivery(models.Model):
    """One reminder to one student on one channel: unique, so it is sent at most once."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("电子邮件")

    class Status(models.TextChoices):
        PENDING = "pending", _("待发送")
        SENDING = "sending", _("发送中")
        SENT = "sent", _("已发送")
        FAILED = "failed", _("发送失败")
        SKIPPED = "skipped", _("未发送")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    stage = models.ForeignKey(ReminderStage, on_delete=models.CASCADE, related_name="deliveries")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(_("发送时间"), null=True, blank=True)
    last_error = models.TextField(_("原因"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "student", "stage", "channel"], name="delivery_once_per_stage_channel"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"]), models.Index(fields=["stage", "status"])]
        verbose_name = _("提醒发送")
        verbose_name_plural = _("提醒发送")

    def __str__(self):
        return f"{self.stage_id}/{self.student_id} {self.status}"


class DepartmentChannel(models.Model):
    """Where a department's daily digest goes besides its secretaries' e-mail."""

    class Robot(models.TextChoices):
        NONE = "", _("不使用")
        WECOM = "wecom", _("企业微信群机器人")
        DINGTALK = "dingtalk", _("钉钉群机器人")

    department = models.OneToOneField(Department, on_delete=models.CASCADE, related_name="channel")
    robot = models.CharField(_("群机器人"), max_length=16, choices=Robot.choices, blank=True)
    webhook_url = models.URLField(_("Webhook 地址"), max_length=500, blank=True)
    signing_secret = models.CharField(_("加签密钥"), max_length=200, blank=True)

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


class DigestDelivery(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", _("电子邮件")
        ROBOT = "robot", _("群机器人")

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    recipient = models.CharField(max_length=254)
    status = models.CharField(max_length=16, choices=Delivery.Status.choices, default=Delivery.Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["digest", "channel", "recipient"], name="digest_delivery_once")]
        verbose_name = _("日报发送")
        verbose_name_plural = _("日报发送")

    def __str__(self):
        return f"{self.digest_id} {self.channel} {self.status}"
