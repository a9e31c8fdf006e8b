from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import fields as roll_fields
from .crypto import EncryptedTextField, IdMaskedCharField, KeyedHashField
from .idnumbers import IdType


class User(AbstractUser):
    """A portal account.  Students sign in with their 学号 as the username."""

    class Role(models.TextChoices):
        STUDENT = "student", _("学生")
        SECRETARY = "secretary", _("院系秘书")
        # 辅导员/班主任: the classes in ``classes``, possibly of two departments.
        COUNSELLOR = "counsellor", _("辅导员/班主任")
        # 招生办: flags on 专业代码/专业名称 across the school (settings.ADMISSIONS_REVIEW).
        ADMISSIONS = "admissions", _("招生办审核")
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
    classes = models.ManyToManyField(
        "ClassGroup",
        verbose_name=_("负责班级"),
        blank=True,
        related_name="counsellors",
        help_text=_("辅导员/班主任可查看的班级，可跨院系"),
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

    @property
    def is_counsellor(self) -> bool:
        return self.is_active and self.role == self.Role.COUNSELLOR

    @property
    def is_admissions(self) -> bool:
        return self.is_active and self.role == self.Role.ADMISSIONS


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
    # 班长/学习委员: students of the class who see its progress (names of those not finished) after signing in.
    monitors = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("班长/学习委员"),
        blank=True,
        related_name="monitored_classes",
        limit_choices_to={"role": "student"},
    )

    class Meta:
        ordering = ["department__name", "name"]
        constraints = [models.UniqueConstraint(fields=["department", "name"], name="class_department_name_unique")]
        verbose_name = _("班级")
        verbose_name_plural = _("班级")

    def __str__(self):
        return self.name


class Student(models.Model):
    """A student's roll record exactly as CHSI holds it (docs/domain.md §2).

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
    # Indexed in Meta: db_index would add a varchar_pattern_ops twin that no look-up uses and that costs
    # about a fifth of a roster's insert (random 64-character keys, docs/performance.md §3).
    id_number_hash = KeyedHashField(source="id_number")
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
    # A digest of the roster row this record was last imported from: a re-import
    # of an unchanged row is recognised without normalising it again.
    row_fingerprint = models.CharField(max_length=32, blank=True, editable=False)
    # Missing from a later full roster of their cohort: the import never deletes, registrar staff decide.
    not_in_roster = models.ForeignKey(
        "RosterImport",
        verbose_name=_("不在最新名单中（自该次导入）"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
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
            models.Index(fields=["id_number_hash"], name="student_id_number_hash"),
        ]
        verbose_name = _("学籍信息")
        verbose_name_plural = _("学籍信息")

    def __str__(self):
        return f"{self.student_number} {self.name}"

    @property
    def masked_id_number(self) -> str:
        return roll_fields.BY_KEY["id_number"].display(self.id_number, masked=True)

    @property
    def card_heading(self) -> str:
        """CHSI's card heading: 层次-学校名称-专业."""
        return "-".join(part for part in (self.level, self.school_name, self.major_name) if part)

    # Photos read like fields (students.fields.PHOTO_FIELDS); a prefetch of ``photos`` saves the queries.
    def photo_of(self, kind: str):
        return next((photo for photo in self.photos.all() if photo.kind == kind), None)

    @property
    def admission_photo(self):
        return self.photo_of("admission")

    @property
    def graduation_photo(self):
        return self.photo_of("graduation")


class RosterImport(models.Model):
    """One run of the roster import, kept with its report."""

    class Status(models.TextChoices):
        APPLIED = "applied", _("已导入")
        REJECTED = "rejected", _("有错误，未导入")
        DRY_RUN = "dry_run", _("试运行")

    file_name = models.CharField(_("文件名"), max_length=255)
    # Empty for CHSI's roster; the name of a second source (RosterSource) otherwise.
    source = models.CharField(_("来源"), max_length=64, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("导入人")
    )
    started_at = models.DateTimeField(_("开始时间"), default=timezone.now)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices)
    # A full roster of its cohorts: their students missing from it are marked "not in the latest roster".
    full = models.BooleanField(_("完整名单"), default=False)
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
        return f"{self.file_name} ({timezone.localtime(self.started_at):%Y-%m-%d %H:%M})"


class ImportFinding(models.Model):
    """A data-quality finding on a record: stored, never blocking (docs/domain.md §4.2).

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
        ROLL_STATUS = "roll_status", _("学籍状态不是在籍（注册学籍）")

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
        SIGNIN_LOCKOUT = "signin.lockout", _("多地址登录失败，账号暂停登录")
        API_CALL = "api.call", _("接口调用")
        PHOTO_VIEW = "photo.view", _("查看照片")
        PASSWORD_RESET = "account.password_reset", _("学生通过身份核验重设密码")
        ACCOUNT_UNLOCK = "account.unlock", _("解除账号登录锁定")
        SIGNIN_RESET = "account.signin_reset", _("重置学生登录")

    at = models.DateTimeField(_("时间"), default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+", verbose_name=_("操作人")
    )
    action = models.CharField(_("操作"), max_length=32, choices=Action.choices)
    student = models.ForeignKey(
        Student, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("学生")
    )
    # Free text (a reveal reason, a file name) is written with any ID number in it masked.
    target = IdMaskedCharField(_("对象"), max_length=200, blank=True)
    detail = IdMaskedCharField(_("说明"), max_length=500, blank=True)
    rows = models.PositiveIntegerField(_("行数"), null=True, blank=True)
    ip_address = models.GenericIPAddressField(_("来源地址"), null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["action", "-at"]), models.Index(fields=["user", "-at"])]
        verbose_name = _("访问日志")
        verbose_name_plural = _("访问日志")

    def __str__(self):
        return f"{timezone.localtime(self.at):%Y-%m-%d %H:%M} {self.user_id} {self.action}"

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
        return f"{self.user_id} {timezone.localtime(self.created_at):%Y-%m-%d %H:%M}"


class RosterSource(models.Model):
    """A second roster from the school's own systems (教务, 学工, 迎新), kept beside CHSI's to compare.

    Importing a file under the same name replaces the source; CHSI records are never touched.
    """

    name = models.CharField(_("来源名称"), max_length=64, unique=True)
    file_name = models.CharField(_("文件名"), max_length=255)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("导入人")
    )
    imported_at = models.DateTimeField(_("导入时间"), default=timezone.now)
    rows = models.PositiveIntegerField(_("记录数"), default=0)

    class Meta:
        ordering = ["name"]
        verbose_name = _("对照名单")
        verbose_name_plural = _("对照名单")

    def __str__(self):
        return self.name


class SourceRecord(models.Model):
    """One student as a second source holds them, normalised exactly as the CHSI import normalises."""

    source = models.ForeignKey(RosterSource, on_delete=models.CASCADE, related_name="records")
    row = models.PositiveIntegerField(_("行号"))
    student_number = models.CharField(_("学号"), max_length=32)
    id_number = EncryptedTextField(_("证件号码"), blank=True)
    id_number_hash = KeyedHashField(source="id_number", db_index=True)
    # Field key → stored form (dates as YYYY-MM-DD); the ID number lives only in the encrypted column.
    values = models.JSONField(_("字段值"), default=dict)

    class Meta:
        ordering = ["source", "row"]
        constraints = [models.UniqueConstraint(fields=["source", "student_number"], name="source_student_unique")]
        verbose_name = _("对照名单记录")
        verbose_name_plural = _("对照名单记录")

    def __str__(self):
        return f"{self.source_id}:{self.student_number}"


class SourceResolution(models.Model):
    """The registrar's decision on one difference between CHSI and a second source.

    Keyed by the values compared, so a decision lapses by itself once either side changes.
    """

    class Decision(models.TextChoices):
        CHSI_WRONG = "chsi_wrong", _("学信网有误，转入更正")
        SOURCE_WRONG = "source_wrong", _("学校系统有误，通知业务部门")
        NO_ACTION = "no_action", _("无需处理")

    source = models.ForeignKey(RosterSource, on_delete=models.CASCADE, related_name="resolutions")
    student_number = models.CharField(_("学号"), max_length=32)
    field_code = models.CharField(_("字段"), max_length=16)
    # Keyed hashes of the two values: plain values of sensitive fields are never stored here.
    values_hash = models.CharField(max_length=64)
    decision = models.CharField(_("处理"), max_length=16, choices=Decision.choices)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(_("处理时间"), default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "student_number", "field_code"], name="source_resolution_unique")
        ]
        verbose_name = _("差异处理")
        verbose_name_plural = _("差异处理")

    def __str__(self):
        return f"{self.source_id}:{self.student_number}:{self.field_code} {self.decision}"


class ApiClient(models.Model):
    """A campus system (教务, 学工, a data platform) calling the REST API with its own token.

    Each client acts through a service account of its own whose role and
    departments scope it exactly like a person's (registrar = whole school,
    secretary = some departments), so the API reuses every access rule.
    Only the token's SHA-256 is stored; the token is shown once.
    """

    name = models.CharField(_("客户端名称"), max_length=100, unique=True)
    account = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_client", verbose_name=_("服务账号")
    )
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(_("令牌前缀"), max_length=12)
    can_write = models.BooleanField(_("可导入名单、更新联系方式"), default=False)
    can_reveal = models.BooleanField(_("可读取完整证件号码（每次记录日志）"), default=False)
    rate_per_minute = models.PositiveIntegerField(_("每分钟请求上限"), default=120)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("创建时间"), default=timezone.now)
    revoked_at = models.DateTimeField(_("停用时间"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True)
    # A fixed one-minute window counted in the database, so every web worker shares it.
    window_start = models.DateTimeField(null=True, blank=True)
    window_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        verbose_name = _("接口客户端")
        verbose_name_plural = _("接口客户端")

    def __str__(self):
        return self.name


class RosterPreset(models.Model):
    """A saved column mapping for rosters from one source whose headers the portal does not know.

    ``mapping`` maps a header as written (normalised like every header) to a
    field key, or to "" to ignore that column.
    """

    name = models.CharField(_("预设名称"), max_length=64, unique=True)
    mapping = models.JSONField(_("列对应关系"), default=dict)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("列对应预设")
        verbose_name_plural = _("列对应预设")

    def __str__(self):
        return self.name


class Photo(models.Model):
    """A student's photo as CHSI holds it: the 录取照片 from admission, the 学历照片 from 图像采集.

    Stored privately like evidence (PRIVATE_ROOT/photos) and only ever served by
    a permission-checked view (students.photos).  An import appends its photos to
    a pack file (``pack``, ``offset``, ``size``); photos imported before packs have a
    file of their own (``storage_name``).
    """

    class Kind(models.TextChoices):
        ADMISSION = "admission", _("录取照片")
        GRADUATION = "graduation", _("学历照片")

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="photos")
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices)
    storage_name = models.CharField(max_length=100, unique=True, null=True, blank=True, editable=False)
    pack = models.CharField(max_length=40, blank=True, default="", db_index=True, editable=False)
    offset = models.BigIntegerField(null=True, blank=True, editable=False)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(_("宽"))
    height = models.PositiveIntegerField(_("高"))
    size = models.PositiveIntegerField(_("字节"))
    imported_at = models.DateTimeField(_("导入时间"), default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["student", "kind"], name="photo_student_kind_unique")]
        verbose_name = _("照片")
        verbose_name_plural = _("照片")

    def __str__(self):
        return f"{self.student_id} {self.kind}"
