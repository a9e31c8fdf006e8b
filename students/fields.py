"""The registry of roll-record fields: the one list every feature reads.

Each CHSI 学籍 field is described once here: its model attribute, its CHSI
column code, its label as CHSI's card shows it, whether it is a main field,
who can correct it, how students treat it in a check, which headers a roster
may use for it, and how its values are normalised and compared
(shared/DOMAIN.md §2).  Import, the checklist, review queues and exports all
iterate ``ROLL_FIELDS`` instead of repeating field lists.
"""

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import models
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

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
    extra: dict = field(default_factory=dict)

    @property
    def authority(self) -> str:
        """The school's configured authority (provinces differ, DOMAIN.md §6.2)."""
        if self.default_authority == Authority.NONE:
            return Authority.NONE
        override = settings.ROLL_PROVINCE_APPROVAL_FIELDS
        if override:
            return Authority.PROVINCE if self.code in override else Authority.SCHOOL
        return self.default_authority

    def normalise(self, value):
        """The stored form of a raw value; raises ``ValueError`` when unreadable."""
        return self.normaliser(value)

    def display(self, value) -> str:
        """The value as CHSI's card shows it."""
        return _date_display(value) if self.is_date else (value or "")

    def same(self, a, b) -> bool:
        """Whether two values count as equal for this field (brackets in 专业 etc.)."""
        if self.is_date:
            return n.parse_date(a) == n.parse_date(b)
        return self.comparable(a or "") == self.comparable(b or "")


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
        required=True, evidence=True, normaliser=n.compact, aliases=("姓名",),
    ),
    RollField(
        "gender", "XB", _("性别"), True, Category.IDENTITY, Authority.PROVINCE,
        evidence=True, normaliser=n.normalise_gender, choices=n.GENDERS, aliases=("性别",),
    ),
    RollField(
        "birth_date", "CSRQ", _("出生日期"), True, Category.IDENTITY, Authority.PROVINCE,
        evidence=True, normaliser=n.parse_date, is_date=True, aliases=("出生日期",),
    ),
    RollField(
        "ethnicity", "MZ", _("民族"), True, Category.IDENTITY, Authority.PROVINCE,
        evidence=True, normaliser=n.normalise_ethnicity, comparable=n.normalise_ethnicity,
        choices=n.ETHNIC_GROUPS + n.ETHNIC_EXTRA, aliases=("民族",),
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
        aliases=("学号",),
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
    # School-side fields that CHSI's card does not show (DOMAIN.md §2.1).
    RollField(
        "exam_number", "KSH", _("考生号"), True, Category.ADMISSION, Authority.NONE,
        student_check=StudentCheck.INFO, on_card=False, normaliser=n.normalise_identifier,
        comparable=n.normalise_identifier, aliases=("考生号",),
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

BY_KEY: dict[str, RollField] = {f.key: f for f in ROLL_FIELDS}
BY_CODE: dict[str, RollField] = {f.code: f for f in ROLL_FIELDS}
# Codes whose Excel number cells have lost digits or leading zeros (080901 → 80901).
IDENTIFIER_CODES = ("XH", "SFZH", "KSH", "YXDM", "ZYDM")

# Contact details are not CHSI fields but travel in the same roster.
CONTACT_HEADERS = {
    "phone": ("SJHM", "SJH", "手机", "手机号", "手机号码", "联系电话", "电话"),
    "email": ("DZYX", "EMAIL", "邮箱", "电子邮箱", "电子邮件"),
}


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


def resolve_header(text) -> str | None:
    return header_map().get(_header_key(str(text or "")))


def card_fields() -> list[RollField]:
    return [f for f in ROLL_FIELDS if f.on_card]


def code_of(key: str) -> str:
    """CHSI code for a registry key; contact columns keep their own name."""
    return BY_KEY[key].code if key in BY_KEY else key.upper()
