from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from students import fields as roll_fields
from students.crypto import EncryptedTextField
from students.models import Cohort, Student


def default_campaign_fields() -> list[str]:
    """Main and non-main fields students check, plus 考生号 shown for information."""
    return [f.code for f in roll_fields.ROLL_FIELDS if f.student_check != roll_fields.StudentCheck.HIDDEN]


class Campaign(models.Model):
    """One round of checking, e.g. 2025级新生学籍核对."""

    class Kind(models.TextChoices):
        NEW_STUDENTS = "new", _("新生学籍核对（秋季）")
        GRADUATING = "graduating", _("毕业生学籍最终核对（4月）")

    name = models.CharField(_("名称"), max_length=200)
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices, default=Kind.NEW_STUDENTS)
    cohorts = models.ManyToManyField(Cohort, verbose_name=_("年级"), related_name="campaigns")
    opens_at = models.DateTimeField(_("开始时间"))
    closes_at = models.DateTimeField(_("截止时间"))
    instructions = models.TextField(_("说明"), blank=True)
    field_codes = models.JSONField(_("核对字段"), default=default_campaign_fields)
    # Set once the close has been processed (never-answered students marked 逾期).
    closed_at = models.DateTimeField(_("已结束于"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-opens_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(closes_at__gt=models.F("opens_at")), name="campaign_closes_after_opening"
            )
        ]
        verbose_name = _("核对活动")
        verbose_name_plural = _("核对活动")

    def __str__(self):
        return self.name

    def is_open(self, now=None) -> bool:
        now = now or timezone.now()
        return self.closed_at is None and self.opens_at <= now < self.closes_at

    def checked_fields(self) -> list[roll_fields.RollField]:
        """Fields students answer 正确/有误 for, in card order."""
        codes = set(self.field_codes)
        return [
            f for f in roll_fields.ROLL_FIELDS if f.code in codes and f.student_check == roll_fields.StudentCheck.CHECK
        ]

    def info_fields(self) -> list[roll_fields.RollField]:
        """Fields shown for information only (考生号)."""
        codes = set(self.field_codes)
        return [
            f for f in roll_fields.ROLL_FIELDS if f.code in codes and f.student_check == roll_fields.StudentCheck.INFO
        ]


class Checklist(models.Model):
    """One student's check in one campaign.

    ``state`` is kept up to date by the services so that dashboards count
    checklists by state instead of aggregating every answer.
    """

    class State(models.TextChoices):
        NOT_STARTED = "not_started", _("未开始")
        IN_PROGRESS = "in_progress", _("核对中")
        RETURNED = "returned", _("被退回待修改")
        FLAGGED = "flagged", _("已报错")
        CONFIRMED = "confirmed", _("已确认无误")
        OVERDUE = "overdue", _("逾期未核对")

    FINISHED = (State.CONFIRMED, State.FLAGGED)

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="checklists")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="checklists")
    state = models.CharField(_("状态"), max_length=16, choices=State.choices, default=State.NOT_STARTED)
    attested_at = models.DateTimeField(_("确认全部正确于"), null=True, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    last_activity_at = models.DateTimeField(_("最近操作"), null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "student"], name="checklist_campaign_student_unique")
        ]
        indexes = [models.Index(fields=["campaign", "state"], name="checklist_campaign_state")]
        verbose_name = _("核对记录")
        verbose_name_plural = _("核对记录")

    def __str__(self):
        return f"{self.campaign_id}/{self.student_id} {self.state}"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED


class FieldCheck(models.Model):
    """A student's answer for one field: what they saw, when, and what they said."""

    class Status(models.TextChoices):
        CONFIRMED = "confirmed", _("正确")
        FLAGGED = "flagged", _("有误")
        REOPENED = "reopened", _("数据已更新，请重新核对")

    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="field_checks")
    field_code = models.CharField(_("字段"), max_length=16)
    status = models.CharField(_("结果"), max_length=16, choices=Status.choices)
    seen_value = models.CharField(_("核对时的值"), max_length=200, blank=True)
    record_version = models.PositiveIntegerField(_("记录版本"))
    # When reopened by an import: the value the student had confirmed before.
    previous_value = models.CharField(_("原值"), max_length=200, blank=True)
    answered_at = models.DateTimeField(_("核对时间"))
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    is_proxy = models.BooleanField(_("代为登记"), default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["checklist", "field_code"], name="fieldcheck_checklist_field_unique")
        ]
        verbose_name = _("字段核对")
        verbose_name_plural = _("字段核对")

    def __str__(self):
        return f"{self.field_code}: {self.status}"

    @property
    def field(self) -> roll_fields.RollField:
        return roll_fields.BY_CODE[self.field_code]


class Flag(models.Model):
    """A field a student reported as wrong, followed until it is fixed on CHSI."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", _("已提交，待院系审核")
        RETURNED = "returned", _("已退回，请修改后重新提交")
        FORWARDED = "forwarded", _("院系已审核，待学籍科受理")
        ACCEPTED = "accepted", _("学籍科已受理")
        SUBMITTED_TO_CHSI = "chsi_submitted", _("已提交学信网更正")
        CORRECTED = "corrected", _("学信网已更正")
        WITHDRAWN = "withdrawn", _("已撤回")

    OPEN = (Status.SUBMITTED, Status.RETURNED, Status.FORWARDED, Status.ACCEPTED, Status.SUBMITTED_TO_CHSI)

    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="flags")
    field_code = models.CharField(_("字段"), max_length=16)
    # Encrypted at rest: on a 证件号码 flag both values are ID numbers.
    recorded_value = EncryptedTextField(_("学信网记录值"), blank=True)
    claimed_value = EncryptedTextField(_("正确值"))
    explanation = models.TextField(_("说明"), blank=True, max_length=1000)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.SUBMITTED)
    return_reason = models.TextField(_("退回原因"), blank=True)
    record_version = models.PositiveIntegerField(_("记录版本"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    is_proxy = models.BooleanField(_("代为登记"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open flag per field: a double submit or a second tab cannot add another.
            models.UniqueConstraint(
                fields=["checklist", "field_code"],
                condition=Q(status__in=["submitted", "returned", "forwarded", "accepted", "chsi_submitted"]),
                name="flag_one_open_per_field",
            )
        ]
        indexes = [models.Index(fields=["status"])]
        verbose_name = _("报错")
        verbose_name_plural = _("报错")

    def __str__(self):
        return f"{self.field_code}: {self.recorded_value} → {self.claimed_value}"

    @property
    def field(self) -> roll_fields.RollField:
        return roll_fields.BY_CODE[self.field_code]

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class FlagEvent(models.Model):
    """Append-only history of a flag: every change of state, who and when."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(_("操作"), max_length=64)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    note = models.TextField(_("备注"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("报错记录")
        verbose_name_plural = _("报错记录")

    def __str__(self):
        return f"{self.flag_id} {self.action}"


class Evidence(models.Model):
    """An uploaded proof (ID card, 户口簿 page, certificate), stored privately."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="evidence")
    storage_name = models.CharField(max_length=100, unique=True, editable=False)
    original_name = models.CharField(_("文件名"), max_length=200)
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["uploaded_at", "id"]
        verbose_name = _("证明材料")
        verbose_name_plural = _("证明材料")

    def __str__(self):
        return self.original_name


class SupportRequest(models.Model):
    """A student's "record not found on CHSI" or "CHSI account problem" report."""

    class Kind(models.TextChoices):
        NOT_FOUND = "not_found", _("学信网上查不到我的学籍")
        ID_REGISTERED = "id_registered", _("身份证号已被注册")
        PHONE_REGISTERED = "phone_registered", _("手机号已被注册")

    class Status(models.TextChoices):
        OPEN = "open", _("待处理")
        RESOLVED = "resolved", _("已处理")

    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="support_requests")
    kind = models.CharField(_("问题"), max_length=20, choices=Kind.choices)
    note = models.TextField(_("补充说明"), blank=True, max_length=1000)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["checklist", "kind"], condition=Q(status="open"), name="support_one_open_per_kind"
            )
        ]
        verbose_name = _("求助")
        verbose_name_plural = _("求助")

    def __str__(self):
        return f"{self.checklist_id} {self.kind}"


class Export(models.Model):
    """One export: the access log entry and, for large ones, the stored file.

    Every download of student data creates one (who, when, what, how many rows,
    from where).  Small exports are written straight into the response; large
    ones are built by a Celery task into private storage and expire.
    """

    class Kind(models.TextChoices):
        CLASS_SIGN_OFF = "class-sign-off", _("班级核对登记表")
        DEPARTMENT_ERRORS = "department-errors", _("学籍信息有误学生名单")
        CHSI_CORRECTIONS = "chsi-corrections", _("学信网更正清单")
        UNVERIFIED = "unverified", _("未完成核对学生名单")
        FINDINGS = "findings", _("数据问题清单")
        ACCESS_LOG = "access-log", _("个人信息访问日志")
        CAMPAIGN_RECORDS = "campaign-records", _("核对活动全部记录")

    class Status(models.TextChoices):
        PENDING = "pending", _("排队中")
        RUNNING = "running", _("生成中")
        DONE = "done", _("已完成")
        FAILED = "failed", _("失败")
        EXPIRED = "expired", _("已过期")

    kind = models.CharField(_("类型"), max_length=32, choices=Kind.choices)
    params = models.JSONField(_("范围"), default=dict)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(_("申请时间"), default=timezone.now)
    ip_address = models.GenericIPAddressField(_("来源地址"), null=True, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.PENDING)
    row_count = models.PositiveIntegerField(_("行数"), null=True, blank=True)
    file_name = models.CharField(_("文件名"), max_length=200, blank=True)
    storage_name = models.CharField(max_length=100, blank=True, editable=False)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    expires_at = models.DateTimeField(_("过期时间"), null=True, blank=True)
    error = models.TextField(_("错误"), blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            models.Index(fields=["requested_by", "-requested_at"]),
            models.Index(fields=["status", "expires_at"]),
        ]
        verbose_name = _("导出记录")
        verbose_name_plural = _("导出记录")

    def __str__(self):
        return f"{self.get_kind_display()} {self.requested_at:%Y-%m-%d %H:%M}"


class ClassProgressLink(models.Model):
    """A revocable, expiring link to a class's progress, for the class WeChat group.

    It shows the counts and the names of students not yet done, nothing else.
    """

    token = models.CharField(max_length=64, unique=True, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    class_group = models.ForeignKey("students.ClassGroup", on_delete=models.CASCADE, related_name="progress_links")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(_("有效期至"))
    revoked_at = models.DateTimeField(_("撤销时间"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("班级进度链接")
        verbose_name_plural = _("班级进度链接")

    def __str__(self):
        return f"{self.class_group} {self.expires_at:%Y-%m-%d}"

    def is_valid(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and now < self.expires_at
