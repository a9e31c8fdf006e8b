from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from students import fields as roll_fields
from students.crypto import EncryptedTextField, IdMaskedCharField, IdMaskedTextField
from students.models import ClassGroup, Cohort, Department, Student


def default_campaign_fields() -> list[str]:
    """A new-student campaign's fields (verification.campaign_kinds): what students see on CHSI, 考生号 for information."""
    from .campaign_kinds import NEW_STUDENTS

    return list(NEW_STUDENTS.field_codes)


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
    # Staged deadlines (docs/domain.md: students, then departments, then the registrar's report).
    # Empty on the form: ``services.campaign_save`` fills them from ``closes_at``.
    departments_close_at = models.DateTimeField(_("院系汇总截止"), null=True, blank=True)
    registrar_close_at = models.DateTimeField(_("学籍科上报截止"), null=True, blank=True)
    # Set once the close has been processed (unfinished students marked 逾期); cleared by an extension.
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

    @property
    def departments_deadline(self):
        """院系汇总截止: returned flags stay amendable until then."""
        return self.departments_close_at or self.closes_at

    @property
    def registrar_deadline(self):
        """学籍科上报截止."""
        return self.registrar_close_at or self.departments_deadline

    @property
    def kind_spec(self):
        """What this kind of campaign checks and when (verification.campaign_kinds)."""
        from .campaign_kinds import kind_of

        return kind_of(self.kind)

    def checked_fields(self) -> list[roll_fields.RollField]:
        """Fields every student answers 正确/有误 for, in card order (photos: ``Checklist.checked_fields``)."""
        codes = set(self.field_codes)
        return [
            f for f in roll_fields.ROLL_FIELDS if f.code in codes and f.student_check == roll_fields.StudentCheck.CHECK
        ]

    def checked_photos(self) -> list[roll_fields.RollField]:
        """The photos students are asked to look at, each only by those the school holds it for."""
        codes = set(self.field_codes)
        return [f for f in roll_fields.PHOTO_FIELDS if f.code in codes]

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
        # Out of the campaign (休学, 参军入伍 …): not counted, not reminded (``excluded_reason``).
        EXCLUDED = "excluded", _("不参加本次核对")

    class Exclusion(models.TextChoices):
        PREPARATORY = "preparatory", _("少数民族预科")
        DEFERRED = "deferred", _("保留入学资格")
        SUSPENDED = "suspended", _("休学")
        ENLISTED = "enlisted", _("参军入伍")
        WITHDRAWN = "withdrawn", _("放弃入学资格")
        NOT_IN_ROSTER = "not_in_roster", _("不在最新名单中")
        OTHER = "other", _("其他")

    class Inclusion(models.TextChoices):
        RESUMED = "resumed", _("复学")
        TRANSFERRED = "transferred", _("转入")

    # Status groups: read these, never spell the states out again.
    FINISHED = (State.CONFIRMED, State.FLAGGED)
    # Still to do while the campaign is open: the students a reminder is for.
    UNFINISHED = (State.NOT_STARTED, State.IN_PROGRESS, State.RETURNED)

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="checklists")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="checklists")
    state = models.CharField(_("状态"), max_length=16, choices=State.choices, default=State.NOT_STARTED)
    attested_at = models.DateTimeField(_("确认全部正确于"), null=True, blank=True)
    # The first finish: kept when a re-import reopens a field, so the history never drops.
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    last_activity_at = models.DateTimeField(_("最近操作"), null=True, blank=True)
    # An individual extension (sick, abroad): the student may answer until then.
    deadline = models.DateTimeField(_("个人延期至"), null=True, blank=True)
    excluded_reason = models.CharField(_("不参加原因"), max_length=16, choices=Exclusion.choices, blank=True)
    excluded_note = models.CharField(_("说明"), max_length=200, blank=True)
    # A student of another cohort taken into this campaign (复学, 转入).
    included_reason = models.CharField(_("加入原因"), max_length=16, choices=Inclusion.choices, blank=True)
    # The student's place in the school, copied so that dashboards count one table without joining
    # the students (docs/performance.md §2).  Set on creation and kept equal to the student's by
    # services.checklist_scope_sync after each roster import and each save of a student.
    department = models.ForeignKey(
        Department, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    class_group = models.ForeignKey(
        ClassGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    cohort = models.ForeignKey(
        Cohort, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "student"], name="checklist_campaign_student_unique")
        ]
        indexes = [
            models.Index(fields=["campaign", "state"], name="checklist_campaign_state"),
            # Covers the dashboards' counts: an index-only scan of one campaign (or one department of it).
            models.Index(
                fields=["campaign", "department", "class_group", "cohort", "state", "finished_at"],
                name="checklist_scope_counts",
            ),
        ]
        verbose_name = _("核对记录")
        verbose_name_plural = _("核对记录")

    def __str__(self):
        return f"{self.campaign_id}/{self.student_id} {self.state}"

    def save(self, *args, **kwargs):
        if self._state.adding and self.department_id is None and self.student_id:
            self.department_id, self.class_group_id, self.cohort_id = (
                self.student.department_id,
                self.student.class_group_id,
                self.student.cohort_id,
            )
        super().save(*args, **kwargs)

    def checked_fields(self) -> list[roll_fields.RollField]:
        """What this student answers, in card order: the photos the school holds, then the campaign's fields.

        A photo the school does not hold is not asked about (a missing 录取照片 does not affect
        the check; the 学历照片 comes later from 图像采集).
        """
        photos = self.campaign.checked_photos()
        if photos:
            held = {photo.kind for photo in self.student.photos.all()}
            photos = [f for f in photos if f.photo in held]
        return photos + self.campaign.checked_fields()

    def own_deadline(self):
        """The student's own deadline: the campaign's, or a later individual extension."""
        if self.deadline and self.deadline > self.campaign.closes_at:
            return self.deadline
        return self.campaign.closes_at

    def is_open(self, now=None) -> bool:
        """May the student still answer?  An individual extension outlives the campaign's close."""
        now = now or timezone.now()
        if self.state == self.State.EXCLUDED or now < self.campaign.opens_at:
            return False
        if self.deadline and now < self.deadline:
            return True
        return self.campaign.is_open(now)

    def returned_amendable(self, now=None) -> bool:
        """After the student deadline, a flag returned to the student may still be amended (or withdrawn)
        until the departments' deadline (院系汇总截止) or the student's own later one."""
        now = now or timezone.now()
        campaign = self.campaign
        if self.state == self.State.EXCLUDED or now < campaign.opens_at:
            return False
        return now < max(campaign.departments_deadline, self.own_deadline())

    @property
    def is_excluded(self) -> bool:
        return self.state == self.State.EXCLUDED

    @property
    def reopened_after_finish(self) -> bool:
        """Finished once, then reopened (a changed value, a returned flag): counted apart from never finished."""
        return self.finished_at is not None and self.state not in self.FINISHED

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    @property
    def is_unfinished(self) -> bool:
        return self.state in self.UNFINISHED


class ChecklistCount(models.Model):
    """How many of a campaign's checklists are in each scope and state: what the dashboards read.

    Kept by database triggers on ``verification_checklist`` (migration ``verification.0012``) in
    the same transaction as every insert, update and delete of a checklist, whichever code (or
    raw SQL) makes it, so the counts never drift from the checklists.  A missing department,
    class or cohort is stored as 0.  Rows are never deleted while their campaign exists (a row at
    0 stays): a decrement never has to recreate a row.  ``dashboards.rebuild_counts`` recomputes
    them from the checklists (``manage.py rebuild_dashboard_counts``).  docs/performance.md §6.
    """

    # No foreign key: the triggers remove a deleted campaign's rows after its checklists.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    # Read with their names in the same query; 0, not NULL, when a checklist has none (the unique
    # key treats NULLs as distinct), hence no constraint and an outer join (null=True).
    department = models.ForeignKey(
        Department, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, null=True, related_name="+"
    )
    class_group = models.ForeignKey(
        ClassGroup, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, null=True, related_name="+"
    )
    cohort = models.ForeignKey(
        Cohort, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, null=True, related_name="+"
    )
    state = models.CharField(max_length=16)
    finished = models.BooleanField()  # has a first finish time (``finished_at``)
    n = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "department", "class_group", "cohort", "state", "finished"],
                name="checklist_count_key",
            )
        ]

    def __str__(self):
        return f"{self.campaign_id}/{self.department_id}/{self.class_group_id}/{self.cohort_id} {self.state}: {self.n}"


class FinishCount(models.Model):
    """First finishes of a campaign's checklists (those not excluded) per quarter hour, for the daily chart.

    Quarter hours in UTC fall within one local day in every time zone, so the chart groups
    them by local day when it reads them.  Kept by the same triggers as ``ChecklistCount``.
    """

    campaign = models.ForeignKey(
        Campaign, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    quarter = models.DateTimeField()
    n = models.IntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "quarter"], name="finish_count_key")]

    def __str__(self):
        return f"{self.campaign_id} {self.quarter:%Y-%m-%d %H:%M}: {self.n}"


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

    @property
    def is_confirmed(self) -> bool:
        return self.status == self.Status.CONFIRMED


class ReviewLevel(models.TextChoices):
    """The steps of the review chain (settings.REVIEW_CHAIN, verification/review_chain.py), lowest first."""

    COUNSELLOR = "counsellor", _("辅导员")
    DEPARTMENT = "department", _("院系")
    REGISTRAR = "registrar", _("学籍科")
    # 专业 flags, when the school routes them to the admissions office (settings.ADMISSIONS_REVIEW).
    ADMISSIONS = "admissions", _("招生办")


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
        # Returned and not resubmitted by the departments' deadline (院系汇总截止): closed.
        NOT_RESUBMITTED = "not_resubmitted", _("逾期未重新提交，已关闭")

    # Status groups: read these, never spell the statuses out again.
    OPEN = (Status.SUBMITTED, Status.RETURNED, Status.FORWARDED, Status.ACCEPTED, Status.SUBMITTED_TO_CHSI)
    # Still with the student and the department: the student may amend or withdraw it.
    EDITABLE = (Status.SUBMITTED, Status.RETURNED)
    # Pending corrections: forwarded to the registrar and not yet corrected on CHSI.
    PENDING_CORRECTION = (Status.FORWARDED, Status.ACCEPTED, Status.SUBMITTED_TO_CHSI)

    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="flags")
    field_code = models.CharField(_("字段"), max_length=16)
    # Encrypted at rest: on a 证件号码 flag both values are ID numbers.
    recorded_value = EncryptedTextField(_("学信网记录值"), blank=True)
    claimed_value = EncryptedTextField(_("正确值"))
    # Free text may quote the number: it is written masked (students.crypto.IdMaskedTextField).
    explanation = IdMaskedTextField(_("说明"), blank=True, max_length=1000)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.SUBMITTED)
    return_reason = IdMaskedTextField(_("退回原因"), blank=True)
    # Who holds the flag now: the review step it waits at (a submitted flag) or the office that
    # corrects it (forwarded and later).  The services move it; the status alone cannot tell
    # a flag waiting for its counsellor from one waiting for its department.
    review_level = models.CharField(
        _("审核环节"), max_length=16, choices=ReviewLevel.choices, default=ReviewLevel.DEPARTMENT
    )
    record_version = models.PositiveIntegerField(_("记录版本"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    is_proxy = models.BooleanField(_("代为登记"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open flag per field: a double submit or a second tab cannot add another.
            # The list is Flag.OPEN spelled out (Meta cannot see the class's names); a test checks they agree.
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
        # Never the values: the audit trail and the admin store and show this text.
        return f"#{self.pk} {self.field_code} {self.status}"

    def get_additional_data(self) -> dict:
        """What the audit trail keeps beside each change: the values as staff lists show them."""
        field = self.field
        return {
            "field": self.field_code,
            "recorded": field.display(self.recorded_value, masked=True),
            "claimed": field.display(self.claimed_value, masked=True),
        }

    @property
    def field(self) -> roll_fields.RollField:
        return roll_fields.BY_CODE[self.field_code]

    def get_status_display(self) -> str:
        """The status as the chain has it: a submitted flag waits for its counsellor (or the registrar, in a
        chain without a department step), a forwarded 专业 flag for the admissions office."""
        S, L = self.Status, ReviewLevel
        if self.status == S.SUBMITTED and self.review_level == L.COUNSELLOR:
            return str(_("已提交，待辅导员审核"))
        if self.status == S.SUBMITTED and self.review_level == L.REGISTRAR:
            return str(_("已提交，待学籍科审核"))
        if self.status == S.FORWARDED and self.review_level == L.ADMISSIONS:
            return str(_("院系已审核，待招生办受理"))
        return str(S(self.status).label) if self.status in S.values else self.status

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    @property
    def is_editable(self) -> bool:
        return self.status in self.EDITABLE

    @property
    def is_returned(self) -> bool:
        return self.status == self.Status.RETURNED


class FlagEvent(models.Model):
    """Append-only history of a flag: every change of state, who and when.

    A move to a status is logged with the action of the same value
    (``Action(to)``); the others are steps that keep the status.  ``actor`` is
    empty for the system (a roster import).
    """

    class Action(models.TextChoices):
        SUBMITTED = "submitted", _("提交报错")
        RESUBMITTED = "resubmitted", _("修改后重新提交")
        AMENDED = "amended", _("修改报错")
        RETURNED = "returned", _("退回学生修改")
        FORWARDED = "forwarded", _("院系审核通过，转学籍科")
        ACCEPTED = "accepted", _("学籍科已受理")
        SUBMITTED_TO_CHSI = "chsi_submitted", _("已提交学信网更正")
        CORRECTED = "corrected", _("学信网已更正")
        CORRECTED_BY_IMPORT = "corrected_by_import", _("学信网已更正（新名单已包含更正后的值）")
        WITHDRAWN = "withdrawn", _("已撤回")
        NOT_RESUBMITTED = "not_resubmitted", _("院系汇总截止，未重新提交，报错关闭")
        REOPENED = "reopened", _("截止时间延长，重新开放修改")
        NOTE = "note", _("备注")
        # A step of the chain passed the flag to the next one before the registrar (辅导员 → 院系).
        PASSED_ON = "passed_on", _("审核通过，转下一环节")

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(_("操作"), max_length=64, choices=Action.choices)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    # The step of the chain the actor acted at (empty for the student and the system).
    level = models.CharField(_("环节"), max_length=16, choices=ReviewLevel.choices, blank=True)
    note = IdMaskedTextField(_("备注"), blank=True)
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
    original_name = IdMaskedCharField(_("文件名"), max_length=200)
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
    """A ticket: a student's "record not found on CHSI", CHSI account problem or other request for help.

    Registrar staff work it (verification/helpdesk.py): assignee, status, replies;
    its history is in ``SupportEvent``.
    """

    class Kind(models.TextChoices):
        NOT_FOUND = "not_found", _("学信网上查不到我的学籍")
        ID_REGISTERED = "id_registered", _("身份证号已被注册")
        PHONE_REGISTERED = "phone_registered", _("手机号已被注册")
        OTHER = "other", _("其他问题")

    class Status(models.TextChoices):
        NEW = "new", _("待处理")
        IN_PROGRESS = "in_progress", _("处理中")
        RESOLVED = "resolved", _("已解决")
        NOT_A_PROBLEM = "not_a_problem", _("无需处理")

    # Status groups: read these, never spell the statuses out again.
    OPEN = (Status.NEW, Status.IN_PROGRESS)
    CLOSED = (Status.RESOLVED, Status.NOT_A_PROBLEM)

    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="support_requests")
    kind = models.CharField(_("问题"), max_length=20, choices=Kind.choices)
    note = IdMaskedTextField(_("补充说明"), blank=True, max_length=1000)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("处理人"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The list is SupportRequest.OPEN spelled out (Meta cannot see the class's names).
            models.UniqueConstraint(
                fields=["checklist", "kind"],
                condition=Q(status__in=["new", "in_progress"]),
                name="support_one_open_per_kind",
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="support_status_created")]
        verbose_name = _("求助")
        verbose_name_plural = _("求助")

    def __str__(self):
        return f"{self.checklist_id} {self.kind}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class SupportEvent(models.Model):
    """Append-only history of a ticket: assignments, status changes and replies, who and when."""

    class Action(models.TextChoices):
        ASSIGNED = "assigned", _("指定处理人")
        STATUS = "status", _("更改状态")
        REPLY = "reply", _("回复学生")

    request = models.ForeignKey(SupportRequest, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(_("操作"), max_length=16, choices=Action.choices)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    # A reply is shown to the student; it may quote the number, so it is written masked.
    text = IdMaskedTextField(_("内容"), blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("求助记录")
        verbose_name_plural = _("求助记录")

    def __str__(self):
        return f"{self.request_id} {self.action}"

    @property
    def to_status_label(self) -> str:
        return SupportRequest.Status(self.to_status).label if self.to_status else ""


def export_kinds():
    """The choices of ``Export.kind``: every exporter in the registry (read lazily: it imports this module)."""
    from .exports.registry import choices

    return choices()


class Export(models.Model):
    """One export: the access log entry and, for large ones, the stored file.

    Every download of student data creates one (who, when, what, how many rows,
    from where).  Small exports are written straight into the response; large
    ones are built by a Celery task into private storage and expire.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("排队中")
        RUNNING = "running", _("生成中")
        DONE = "done", _("已完成")
        FAILED = "failed", _("失败")
        EXPIRED = "expired", _("已过期")

    # The exporter's identifier in verification.exports.registry, which supplies the labels.
    kind = models.CharField(_("类型"), max_length=32, choices=export_kinds)
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
        return f"{self.kind_label} {timezone.localtime(self.requested_at):%Y-%m-%d %H:%M}"

    @property
    def kind_label(self) -> str:
        from .exports.registry import label_of

        return label_of(self.kind)


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
        return f"{self.class_group} {timezone.localtime(self.expires_at):%Y-%m-%d}"

    def is_valid(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and now < self.expires_at


class CampaignEvent(models.Model):
    """Append-only log of a campaign's calendar and membership: deadlines moved, closes, reopenings,
    individual extensions, exclusions and department sign-offs, who and when.

    ``actor`` is empty for the system (the scheduled close).
    """

    class Action(models.TextChoices):
        DEADLINE_CHANGED = "deadline_changed", _("修改截止时间")
        CLOSED = "closed", _("学生核对截止，未完成的学生记为逾期")
        REOPENED = "reopened", _("延长截止时间，重新开放")
        FLAGS_CLOSED = "flags_closed", _("院系汇总截止，未重新提交的报错关闭")
        EXTENDED = "extended", _("个人延期")
        EXCLUDED = "excluded", _("不参加本次核对")
        RESTORED = "restored", _("恢复参加核对")
        INCLUDED = "included", _("加入本次核对")
        SIGNED_OFF = "signed_off", _("院系确认提交")
        SIGN_OFF_WITHDRAWN = "sign_off_withdrawn", _("撤回院系确认")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(_("操作"), max_length=32, choices=Action.choices)
    student = models.ForeignKey(Student, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    note = IdMaskedTextField(_("说明"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("核对活动记录")
        verbose_name_plural = _("核对活动记录")

    def __str__(self):
        return f"{self.campaign_id} {self.action}"


class DepartmentSignOff(models.Model):
    """院系确认提交: a secretary's sign-off of a department's results, with the counts at that moment.

    The registrar may withdraw it (the department then signs off again); a withdrawn one is kept.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sign_offs")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="+")
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    signed_at = models.DateTimeField(_("确认时间"), default=timezone.now)
    total = models.PositiveIntegerField(_("应核对人数"))
    finished = models.PositiveIntegerField(_("已完成"))
    flagged = models.PositiveIntegerField(_("有报错"))
    overdue = models.PositiveIntegerField(_("逾期未核对"))
    excluded = models.PositiveIntegerField(_("不参加核对"))
    remark = models.TextField(_("备注"), blank=True, max_length=1000)
    withdrawn_at = models.DateTimeField(_("撤回时间"), null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    withdraw_reason = models.TextField(_("撤回原因"), blank=True)

    class Meta:
        ordering = ["-signed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "department"],
                condition=Q(withdrawn_at__isnull=True),
                name="signoff_one_active_per_department",
            )
        ]
        verbose_name = _("院系确认提交")
        verbose_name_plural = _("院系确认提交")

    def __str__(self):
        return f"{self.campaign_id}/{self.department_id}"

    @property
    def is_active(self) -> bool:
        return self.withdrawn_at is None
