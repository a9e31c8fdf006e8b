"""The registry of roll-record fields: the one list every feature reads.

Each CHSI 学籍 field is described once here: its model attribute, its CHSI
column code, its label as CHSI's card shows it, whether it is a main field,
who can correct it, how students treat it in a check, which headers a roster
may use for it, how its values are normalised and compared, whether it is
sensitive and how it is shown masked, how a student's claimed value is
validated and what evidence a correction needs (docs/domain.md §2).  Import,
the checklist, review queues, exports, the admin and the audit trail all ask
the field instead of repeating field lists or testing for particular keys.

Inside the code a field is named by its ``key`` (the Student attribute); the
CHSI ``code`` appears at the edges: roster headers, export headers, the import
report, URLs and the stored ``field_code`` columns, read back through ``BY_CODE``.
"""

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import models
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import idnumbers
from . import normalize as n
from .idnumbers import IdType, normalise_id_type


class Authority(models.TextChoices):
    """Who can correct a wrong value on CHSI."""

    SCHOOL = "school", _("学校可直接修改")
    PROVINCE = "province", _("需省级主管部门审核")
    NONE = "none", _("无需核对")


class Category(models.TextChoices):
    IDENTITY = "identity", _("身份信息")
    ADMISSION = "admission", _("录取信息")
    SCHOOL_ORG = "school_org", _("院系班级")
    STATUS = "status", _("学籍状态")


class StudentCheck(models.TextChoices):
    """How a field appears in a student's checklist by default."""

    CHECK = "check", _("需核对")
    INFO = "info", _("仅供参考，无需核对")
    HIDDEN = "hidden", _("不向学生显示")


def _date_display(value) -> str:
    return n.format_chsi_date(value) if isinstance(value, datetime.date) else (value or "")


def _check_id_number(value: str, *, id_type: str) -> None:
    problems = idnumbers.check_id_number(value, id_type)
    if problems:
        raise ValueError(problems[0].message)


def _check_name(value: str, *, id_type: str) -> None:
    if any(ch.isdigit() for ch in value):
        raise ValueError(gettext("姓名不能包含数字"))


# Longest claimed value a student may give (the stored columns allow 200).
MAX_CLAIM_LENGTH = 200


@dataclass(frozen=True)
class RollField:
    key: str
    code: str
    label: Promise
    main: bool
    category: str
    default_authority: str
    student_check: str = StudentCheck.CHECK
    on_card: bool = True
    required: bool = False
    evidence: bool = False
    aliases: tuple[str, ...] = ()
    normaliser: Callable = n.clean_text
    comparable: Callable = n.compact
    choices: tuple[str, ...] = ()
    is_date: bool = False
    help_text: Promise | str = ""
    # Sensitive values (证件号码) are stored encrypted and shown masked unless the
    # full value is needed (the student's own page, a logged reveal, CHSI's list).
    sensitive: bool = False
    masker: Callable[[str], str] = idnumbers.mask
    # Extra check of a student's claimed value, after normalising: raises ValueError.
    validator: Callable[..., None] | None = None
    # What a student must bring to have a wrong value corrected (docs/domain.md §6.3).
    evidence_guidance: Promise | str = ""
    # Values differ from student to student: the import does not share them in memory.
    distinct: bool = False
    # A photo (students.models.Photo.Kind), not a value: checked by looking at it, flagged with
    # a reason (PHOTO_FLAG_REASONS) instead of a claimed value, with a new photo as optional evidence.
    photo: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def authority(self) -> str:
        """The school's configured authority (provinces differ, docs/domain.md §6.2)."""
        if self.default_authority == Authority.NONE:
            return Authority.NONE
        override = settings.ROLL_PROVINCE_APPROVAL_FIELDS
        if override:
            return Authority.PROVINCE if self.code in override else Authority.SCHOOL
        return self.default_authority

    def normalise(self, value):
        """The stored form of a raw value; raises ``ValueError`` when unreadable."""
        return self.normaliser(value)

    def display(self, value, *, masked: bool = True) -> str:
        """The value as CHSI's card shows it; a sensitive one masked unless ``masked=False``.

        Masked is the default so that a caller who forgets to decide shows no
        full ID number; pass ``masked=False`` only where the full value is needed.
        """
        if self.photo:
            return _photo_display(value)
        text = _date_display(value) if self.is_date else (value or "")
        if masked and self.sensitive and text:
            return self.masker(str(text))
        return text

    def clean_claim(self, raw, *, id_type: str = idnumbers.IdType.RESIDENT) -> str:
        """A student's claimed value in stored form, or ``ValueError`` saying what is wrong."""
        text = n.clean_text(raw)
        if not text:
            raise ValueError(gettext("请填写正确的值"))
        if self.is_date:
            return n.parse_date(text).isoformat()
        value = self.normalise(text)
        if self.choices and value not in self.choices:
            raise ValueError(gettext("请从列表中选择"))
        if self.validator is not None:
            self.validator(value, id_type=id_type)
        if len(value) > MAX_CLAIM_LENGTH:
            raise ValueError(gettext("不能超过 %(n)s 个字符") % {"n": MAX_CLAIM_LENGTH})
        return value

    def same(self, a, b) -> bool:
        """Whether two values count as equal for this field (brackets in 专业 etc.)."""
        if self.photo:
            return False  # a reason never "equals" the photo it is about
        if self.is_date:
            return n.parse_date(a) == n.parse_date(b)
        return self.comparable(a or "") == self.comparable(b or "")


def _photo_display(value) -> str:
    """A photo as a flag and a confirmation record it: which picture was seen, not the picture."""
    if value is None or isinstance(value, str):
        return value or ""
    return f"{value.width}×{value.height} · {max(1, round(value.size / 1024))} KB · #{value.sha256[:8]}"


def _year(value) -> str:
    text = n.compact(value)
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if text and not (len(text) == 4 and text.isdigit()):
        raise ValueError(_("录取年份应为四位年份，例如 2025"))
    return text


def _id_type(value) -> str:
    return normalise_id_type(n.compact(value))


ROLL_FIELDS: tuple[RollField, ...] = (
    # Card order of 学信档案 → 高等教育信息 → 学籍信息.
    RollField(
        "name", "XM", _("姓名"), True, Category.IDENTITY, Authority.PROVINCE,
        required=True, evidence=True, normaliser=n.compact, aliases=("姓名",), distinct=True,
        validator=_check_name,
        evidence_guidance=_("户口簿本人页、身份证，以及公安机关出具的姓名变更证明（现用名/曾用名）"),
    ),
    RollField(
        "gender", "XB", _("性别"), True, Category.IDENTITY, Authority.PROVINCE,
        evidence=True, normaliser=n.normalise_gender, choices=n.GENDERS, aliases=("性别",),
        evidence_guidance=_("户口簿本人页和身份证"),
    ),
    RollField(
        "birth_date", "CSRQ", _("出生日期"), True, Category.IDENTITY, Authority.PROVINCE,
        evidence=True, normaliser=n.parse_date, is_date=True, aliases=("出生日期",), distinct=True,
        evidence_guidance=_("户口簿、身份证、《医学出生证明》"),
    ),
    RollField(
        "ethnicity", "MZ", _("民族"), True, Category.IDENTITY, Authority.PROVINCE,
        evidence=True, normaliser=n.normalise_ethnicity, comparable=n.normalise_ethnicity,
        choices=n.ETHNIC_GROUPS + n.ETHNIC_EXTRA, aliases=("民族",),
        evidence_guidance=_("户口簿本人页和公安机关出具的民族证明"),
    ),
    RollField(
        "id_type", "ZJLX", _("证件类型"), True, Category.IDENTITY, Authority.PROVINCE,
        student_check=StudentCheck.HIDDEN, on_card=False, normaliser=_id_type,
        choices=tuple(IdType.values), aliases=("证件类型", "身份证件类型"),
    ),
    RollField(
        "id_number", "SFZH", _("证件号码"), True, Category.IDENTITY, Authority.PROVINCE,
        required=True, evidence=True, normaliser=n.normalise_id_number,
        comparable=n.normalise_id_number, aliases=("证件号码", "身份证号", "身份证号码", "身份证件号"),
        sensitive=True, distinct=True, validator=_check_id_number,
        evidence_guidance=_("户口簿、身份证，以及户口所在地公安机关出具的户籍证明或公民身份号码变更证明"),
    ),
    RollField(
        "school_name", "YXMC", _("学校名称"), True, Category.ADMISSION, Authority.PROVINCE,
        aliases=("学校名称", "院校名称"),
    ),
    RollField(
        "level", "CC", _("层次"), True, Category.ADMISSION, Authority.PROVINCE,
        normaliser=n.compact, choices=n.LEVELS, aliases=("层次", "培养层次"),
    ),
    RollField(
        "major_name", "ZYMC", _("专业"), True, Category.ADMISSION, Authority.PROVINCE,
        comparable=n.strip_major_brackets, aliases=("专业", "专业名称"),
        help_text=_("专业名称括号内的内容无需核对，以录取专业为准。"),
    ),
    RollField(
        "duration", "XZ", _("学制"), True, Category.ADMISSION, Authority.PROVINCE,
        normaliser=n.normalise_duration, comparable=n.normalise_duration, choices=n.DURATIONS,
        aliases=("学制",),
    ),
    RollField(
        "education_category", "XLLB", _("学历类别"), True, Category.ADMISSION, Authority.PROVINCE,
        normaliser=n.compact, comparable=n.normalise_education_category,
        choices=n.EDUCATION_CATEGORIES, aliases=("学历类别",),
    ),
    RollField(
        "study_form", "XXXS", _("学习形式"), True, Category.ADMISSION, Authority.PROVINCE,
        normaliser=n.compact, choices=n.STUDY_FORMS, aliases=("学习形式",),
    ),
    RollField(
        "branch", "FY", _("分院"), False, Category.SCHOOL_ORG, Authority.SCHOOL,
        aliases=("分院", "分院(校)", "学生所在分院(校)"),
    ),
    RollField(
        "department_name", "XSH", _("系（所、函授站）"), False, Category.SCHOOL_ORG, Authority.SCHOOL,
        aliases=("系（所、函授站）", "系(所、函授站)", "系所函授站", "院系", "学院", "系所"),
    ),
    RollField(
        "class_name", "BH", _("班级"), False, Category.SCHOOL_ORG, Authority.SCHOOL,
        normaliser=n.compact, aliases=("班级", "班号"),
    ),
    RollField(
        "student_number", "XH", _("学号"), True, Category.SCHOOL_ORG, Authority.SCHOOL,
        required=True, normaliser=n.normalise_identifier, comparable=n.normalise_identifier,
        aliases=("学号",), distinct=True,
    ),
    RollField(
        "admission_date", "RXRQ", _("入学日期"), False, Category.SCHOOL_ORG, Authority.SCHOOL,
        normaliser=n.parse_date, is_date=True, aliases=("入学日期",),
    ),
    RollField(
        "expected_graduation_date", "YJBYRQ", _("预计毕业日期"), False, Category.SCHOOL_ORG,
        Authority.SCHOOL, normaliser=n.parse_date, is_date=True, aliases=("预计毕业日期", "离校日期"),
    ),
    RollField(
        "roll_status", "XJZT", _("学籍状态"), True, Category.STATUS, Authority.SCHOOL,
        aliases=("学籍状态",),
        help_text=_("新生学籍状态应为“在籍（注册学籍）”，其他状态请报告学籍科。"),
    ),
    # School-side fields that CHSI's card does not show (docs/domain.md §2.4).
    RollField(
        "exam_number", "KSH", _("考生号"), True, Category.ADMISSION, Authority.NONE,
        student_check=StudentCheck.INFO, on_card=False, normaliser=n.normalise_identifier,
        comparable=n.normalise_identifier, aliases=("考生号",), distinct=True,
        help_text=_("学信网考生号统一升位，与入学考试准考证号不同属正常情况，无需核对。"),
    ),
    RollField(
        "origin_province", "SYD", _("生源省市"), True, Category.ADMISSION, Authority.PROVINCE,
        on_card=False, aliases=("生源省市", "生源地", "生源省份"),
    ),
    RollField(
        "admission_year", "LQNF", _("录取年份"), True, Category.ADMISSION, Authority.PROVINCE,
        on_card=False, normaliser=_year, aliases=("录取年份",),
    ),
    RollField(
        "school_code", "YXDM", _("院校代码"), True, Category.ADMISSION, Authority.PROVINCE,
        student_check=StudentCheck.HIDDEN, on_card=False, normaliser=n.normalise_identifier,
        aliases=("院校代码", "学校代码"),
    ),
    RollField(
        "major_code", "ZYDM", _("专业代码"), True, Category.ADMISSION, Authority.PROVINCE,
        student_check=StudentCheck.HIDDEN, on_card=False, normaliser=n.normalise_identifier,
        aliases=("专业代码",),
    ),
    RollField(
        "political_status", "ZZMM", _("政治面貌"), False, Category.IDENTITY, Authority.SCHOOL,
        student_check=StudentCheck.HIDDEN, on_card=False, aliases=("政治面貌",),
    ),
)  # fmt: skip

# What a student may say is wrong with a photo (stored as the flag's claimed value).
PHOTO_FLAG_REASONS = ("不是本人", "照片不清晰", "其他人的照片")

# Photos on CHSI's card (docs/domain.md §2.1): checked like fields, but not roster columns, so they
# are kept out of ROLL_FIELDS (import, exports, the admin) and read through Student.admission_photo etc.
PHOTO_FIELDS: tuple[RollField, ...] = (
    RollField(
        "admission_photo", "LQZP", _("录取照片"), True, Category.IDENTITY, Authority.PROVINCE,
        on_card=False, normaliser=n.clean_text, choices=PHOTO_FLAG_REASONS, photo="admission",
        help_text=_("录取照片来自考试报名（本专科为高考报名）；请确认照片是本人。"),
        evidence_guidance=_("如有本人近期证件照，可上传作为证明材料（JPEG）。"),
    ),
    RollField(
        "graduation_photo", "XLZP", _("学历照片"), True, Category.IDENTITY, Authority.SCHOOL,
        on_card=False, normaliser=n.clean_text, choices=PHOTO_FLAG_REASONS, photo="graduation",
        help_text=_("学历照片将用于学历证书电子注册，并与录取照片进行人像比对。"),
        evidence_guidance=_("如已重新参加图像采集，可上传新照片（JPEG，480×640 像素，不超过 40 KB）。"),
    ),
)  # fmt: skip

# Everything a campaign may ask students to check, photos first as CHSI's card shows them.
CHECKABLE_FIELDS: tuple[RollField, ...] = PHOTO_FIELDS + ROLL_FIELDS

BY_KEY: dict[str, RollField] = {f.key: f for f in CHECKABLE_FIELDS}
BY_CODE: dict[str, RollField] = {f.code: f for f in CHECKABLE_FIELDS}
# Codes whose Excel number cells have lost digits or leading zeros (080901 → 80901).
IDENTIFIER_CODES = ("XH", "SFZH", "KSH", "YXDM", "ZYDM")

# Contact details are not CHSI fields but travel in the same roster.
CONTACT_HEADERS = {
    "phone": ("SJHM", "SJH", "手机", "手机号", "手机号码", "联系电话", "电话"),
    "email": ("DZYX", "EMAIL", "邮箱", "电子邮箱", "电子邮件"),
}


CONTACT_LABELS = {"phone": _("手机号码"), "email": _("电子邮箱")}


def _header_key(text: str) -> str:
    return n.compact(text).upper().replace("（", "(").replace("）", ")")


@functools.cache
def header_map() -> dict[str, str]:
    """Normalised header text → field key, for codes and Chinese labels alike."""
    mapping = {}
    # Cached for the process: read the labels untranslated, whatever language
    # the first caller's request had (roster headers are Chinese).
    with translation.override(None):
        labels = {f.key: str(f.label) for f in ROLL_FIELDS}
    for f in ROLL_FIELDS:
        for name in (f.code, labels[f.key], *f.aliases):
            mapping[_header_key(name)] = f.key
    for key, names in CONTACT_HEADERS.items():
        for name in names:
            mapping[_header_key(name)] = key
    return mapping


def header_key(text) -> str:
    """A header as the registry compares it: no spaces, upper case, half-width brackets."""
    return _header_key(str(text or ""))


def resolve_header(text) -> str | None:
    return header_map().get(_header_key(str(text or "")))


def card_fields() -> list[RollField]:
    return [f for f in ROLL_FIELDS if f.on_card]


def sensitive_keys() -> list[str]:
    """Student attributes holding sensitive values (for the audit trail's masking)."""
    return [f.key for f in ROLL_FIELDS if f.sensitive]


def label_of(code) -> str:
    """The label for a CHSI code as people read it (an unknown or contact code stays as it is)."""
    field = BY_CODE.get(code)
    if field is not None:
        return str(field.label)
    for key, names in CONTACT_HEADERS.items():
        if code in (key.upper(), *names):
            return str(CONTACT_LABELS[key])
    return code or ""


def code_of(key: str) -> str:
    """CHSI code for a registry key; contact columns keep their own name."""
    return BY_KEY[key].code if key in BY_KEY else key.upper()
