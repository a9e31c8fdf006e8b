from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import idnumbers
from .crypto import EncryptedTextField, KeyedHashField
from .idnumbers import IdType


class User(AbstractUser):
    """A portal account.  Students sign in with their 学号 as the username."""

    class Role(models.TextChoices):
        STUDENT = "student", _("学生")
        SECRETARY = "secretary", _("院系秘书")
        REGISTRAR = "registrar", _("学籍科")
        ADMIN = "admin", _("系统管理员")

    role = models.CharField(_("角色"), max_length=16, choices=Role.choices, default=Role.STUDENT)
    departments = models.ManyToManyField(
        "Department",
        verbose_name=_("负责院系"),
        blank=True,
        related_name="secretaries",
        help_text=_("院系秘书可查看的院系"),
    )

    class Meta:
        verbose_name = _("用户")
        verbose_name_plural = _("用户")

    @property
    def is_registrar(self) -> bool:
        return self.is_active and (self.is_superuser or self.role in (self.Role.REGISTRAR, self.Role.ADMIN))

    @property
    def is_secretary(self) -> bool:
        return self.is_active and self.role == self.Role.SECRETARY


class Department(models.Model):
    """院系/学院, as the roster's 系（所、函授站） names it."""

    name = models.CharField(_("名称"), max_length=100, unique=True)
    code = models.CharField(_("代码"), max_length=32, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("院系")
        verbose_name_plural = _("院系")

    def __str__(self):
        return self.name


class Major(models.Model):
    code = models.CharField(_("专业代码"), max_length=16, blank=True)
    name = models.CharField(_("专业名称"), max_length=200)

    class Meta:
        ordering = ["code", "name"]
        constraints = [models.UniqueConstraint(fields=["code", "name"], name="major_code_name_unique")]
        verbose_name = _("专业")
        verbose_name_plural = _("专业")

    def __str__(self):
        return _("%(name)s（%(code)s）") % {"name": self.name, "code": self.code} if self.code else self.name


class Cohort(models.Model):
    """年级: an admission year at one 层次, e.g. 2025级本科."""

    admission_year = models.PositiveSmallIntegerField(_("入学年份"))
    level = models.CharField(_("层次"), max_length=40)

    class Meta:
        ordering = ["-admission_year", "level"]
        constraints = [models.UniqueConstraint(fields=["admission_year", "level"], name="cohort_year_level_unique")]
        verbose_name = _("年级")
        verbose_name_plural = _("年级")

    def __str__(self):
        return _("%(year)s级%(level)s") % {"year": self.admission_year, "level": self.level}


class ClassGroup(models.Model):
    """班级, named by CHSI's 班号 within a department."""

    name = models.CharField(_("班号"), max_length=100)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="classes")
    major = models.ForeignKey(Major, on_delete=models.PROTECT, null=True, blank=True, related_name="classes")
    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, null=True, blank=True, related_name="classes")

    class Meta:
        ordering = ["department__name", "name"]
        constraints = [models.UniqueConstraint(fields=["department", "name"], name="class_department_name_unique")]
        verbose_name = _("班级")
        verbose_name_plural = _("班级")

    def __str__(self):
        return self.name


class Student(models.Model):
    """A student's roll record exactly as CHSI holds it (shared/DOMAIN.md §2.2).

    Field names are the keys of ``students.fields.ROLL_FIELDS``; identifiers are
    text, and sizes are generous so that no real value is ever truncated.
    """

    # CHSI fields
    exam_number = models.CharField(_("考生号"), max_length=32, blank=True)
    student_number = models.CharField(_("学号"), max_length=32, unique=True)
    name = models.CharField(_("姓名"), max_length=100)
    gender = models.CharField(_("性别"), max_length=8, blank=True)
    birth_date = models.DateField(_("出生日期"), null=True, blank=True)
    id_type = models.CharField(_("证件类型"), max_length=32, default=IdType.RESIDENT)
    # Encrypted at rest; the keyed hash beside it serves uniqueness checks and look-ups.
    id_number = EncryptedTextField(_("证件号码"))
    id_number_hash = KeyedHashField(source="id_number", db_index=True)
    political_status = models.CharField(_("政治面貌"), max_length=40, blank=True)
    ethnicity = models.CharField(_("民族"), max_length=40, blank=True)
    origin_province = models.CharField(_("生源省市"), max_length=40, blank=True)
    school_code = models.CharField(_("院校代码"), max_length=16, blank=True)
    school_name = models.CharField(_("学校名称"), max_length=100, blank=True)
    major_code = models.CharField(_("专业代码"), max_length=16, blank=True)
    major_name = models.CharField(_("专业"), max_length=200, blank=True)
    branch = models.CharField(_("分院"), max_length=100, blank=True)
    department_name = models.CharField(_("系（所、函授站）"), max_length=100, blank=True)
    class_name = models.CharField(_("班级"), max_length=100, blank=True)
    level = models.CharField(_("层次"), max_length=40, blank=True)
    duration = models.CharField(_("学制"), max_length=8, blank=True)
    education_category = models.CharField(_("学历类别"), max_length=40, blank=True)
    study_form = models.CharField(_("学习形式"), max_length=40, blank=True)
    admission_date = models.DateField(_("入学日期"), null=True, blank=True)
    expected_graduation_date = models.DateField(_("预计毕业日期"), null=True, blank=True)
    roll_status = models.CharField(_("学籍状态"), max_length=40, blank=True)
    admission_year = models.CharField(_("录取年份"), max_length=4, blank=True)

    # Contact details for reminders (not CHSI fields)
    phone = models.CharField(_("手机号码"), max_length=32, blank=True)
    email = models.EmailField(_("电子邮箱"), max_length=254, blank=True)

    # Where the record sits in the school, derived from the CHSI fields on import
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="students")
    major = models.ForeignKey(Major, on_delete=models.PROTECT, null=True, blank=True, related_name="students")
    class_group = models.ForeignKey(
        ClassGroup, on_delete=models.PROTECT, null=True, blank=True, related_name="students"
    )
    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, null=True, blank=True, related_name="students")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="student",
        verbose_name=_("登录账号"),
    )
    # Bumped by every import that changes the record, so a form opened on an
    # older version can be refused instead of applied to changed data.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["student_number"]
        indexes = [
            models.Index(fields=["department", "class_group"]),
            models.Index(fields=["name"]),
            # Dashboards join every checklist to its student for these three
            # columns; this lets PostgreSQL read them from the index instead of
            # the wide rows (2.4x faster at 50,000 students, bench/dashboards.py).
            models.Index(fields=["id", "department", "cohort", "class_group"], name="student_scope"),
        ]
        verbose_name = _("学籍信息")
        verbose_name_plural = _("学籍信息")

    def __str__(self):
        return f"{self.student_number} {self.name}"

    @property
    def masked_id_number(self) -> str:
        return idnumbers.mask(self.id_number)

    @property
    def card_heading(self) -> str:
        """CHSI's card heading: 层次-学校名称-专业."""
        return "-".join(part for part in (self.level, self.school_name, self.major_name) if part)


class RosterImport(models.Model):
    """One run of the roster import, kept with its report."""

    class Status(models.TextChoices):
        APPLIED = "applied", _("已导入")
        REJECTED = "rejected", _("有错误，未导入")
        DRY_RUN = "dry_run", _("试运行")

    file_name = models.CharField(_("文件名"), max_length=255)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("导入人")
    )
    started_at = models.DateTimeField(_("开始时间"), default=timezone.now)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices)
    rows = models.PositiveIntegerField(_("数据行数"), default=0)
    created = models.PositiveIntegerField(_("新增"), default=0)
    updated = models.PositiveIntegerField(_("更新"), default=0)
    unchanged = models.PositiveIntegerField(_("未变"), default=0)
    error_count = models.PositiveIntegerField(_("错误"), default=0)
    warning_count = models.PositiveIntegerField(_("提示"), default=0)
    report = models.JSONField(_("报告"), default=dict)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("名单导入")
        verbose_name_plural = _("名单导入")

    def __str__(self):
        return f"{self.file_name} ({self.started_at:%Y-%m-%d %H:%M})"


class ImportFinding(models.Model):
    """A data-quality finding on a record: stored, never blocking (DOMAIN.md §4.2).

    Findings describe the record as last imported; each import replaces the
    findings of the students it touched.
    """

    class Kind(models.TextChoices):
        ID_CHECKSUM = "id_checksum", _("身份证号码校验位错误")
        ID_FORMAT = "id_format", _("证件号码格式错误")
        ID_15_DIGIT = "id_15_digit", _("15 位旧身份证号码")
        ID_BIRTH_DATE_INVALID = "id_birth_date_invalid", _("身份证号码中的出生日期无效")
        ID_BIRTH_DATE_FUTURE = "id_birth_date_future", _("身份证号码中的出生日期在未来")
        BIRTH_DATE_MISMATCH = "birth_date_mismatch", _("出生日期与身份证号码不符")
        GENDER_MISMATCH = "gender_mismatch", _("性别与身份证号码不符")
        BIRTH_DATE_FUTURE = "birth_date_future", _("出生日期在未来")
        DUPLICATE_ID = "duplicate_id", _("证件号码与其他学生重复")
        UNKNOWN_ETHNICITY = "unknown_ethnicity", _("民族不在 GB/T 3304 名录中")
        UNUSUAL_DURATION = "unusual_duration", _("学制与层次不常见")
        GRADUATION_DATE_OFF = "graduation_date_off", _("预计毕业日期与入学日期加学制相差超过一年")

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="findings")
    roster_import = models.ForeignKey(RosterImport, on_delete=models.SET_NULL, null=True, related_name="findings")
    field_code = models.CharField(_("字段"), max_length=16)
    kind = models.CharField(_("类型"), max_length=32, choices=Kind.choices)
    message = models.TextField(_("说明"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["student_id", "field_code"]
        indexes = [models.Index(fields=["kind"])]
        verbose_name = _("数据问题")
        verbose_name_plural = _("数据问题")

    def __str__(self):
        return f"{self.student_id} {self.field_code} {self.kind}"


class AccessEvent(models.Model):
    """Append-only log of access to personal data: who, what, when, from where.

    Viewing a full record, revealing an ID number, downloading evidence and
    exporting a file each write one row.  Rows are never updated or deleted by
    the application (retention deletes reveal events past their time).
    """

    class Action(models.TextChoices):
        RECORD_VIEW = "record.view", _("查看完整学籍记录")
        ID_REVEAL = "id.reveal", _("显示完整证件号码")
        EVIDENCE_DOWNLOAD = "evidence.download", _("下载证明材料")
        EXPORT = "export", _("导出文件")
        ROSTER_IMPORT = "roster.import", _("导入名单")
        DIGEST_DOWNLOAD = "digest.download", _("下载院系日报")

    at = models.DateTimeField(_("时间"), default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+", verbose_name=_("操作人")
    )
    action = models.CharField(_("操作"), max_length=32, choices=Action.choices)
    student = models.ForeignKey(
        Student, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("学生")
    )
    target = models.CharField(_("对象"), max_length=200, blank=True)
    detail = models.CharField(_("说明"), max_length=500, blank=True)
    rows = models.PositiveIntegerField(_("行数"), null=True, blank=True)
    ip_address = models.GenericIPAddressField(_("来源地址"), null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["action", "-at"]), models.Index(fields=["user", "-at"])]
        verbose_name = _("访问日志")
        verbose_name_plural = _("访问日志")

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.user_id} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("access events are append-only")
        super().save(*args, **kwargs)


class UserSession(models.Model):
    """Which sessions belong to which user, so that disabling an account ends them all."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("登录会话")
        verbose_name_plural = _("登录会话")

    def __str__(self):
        return f"{self.user_id} {self.created_at:%Y-%m-%d %H:%M}"
