"""Normalisation of roll-record values before they are stored or compared.

Real rosters come from Excel in China: full-width digits and letters, stray
spaces, a lower-case ``x`` in an ID number, dates in three spellings and
legacy ethnic names (docs/domain.md §3, §8).  Every function here takes
whatever a cell held and returns the canonical text, or raises ``ValueError``
with a message meant for the person who prepared the file.
"""

import datetime
import re

from django.utils.translation import gettext as _

# GB/T 3304-1991, in code order (docs/domain.md §3.1).
ETHNIC_GROUPS = (
    "汉族", "蒙古族", "回族", "藏族", "维吾尔族", "苗族", "彝族", "壮族", "布依族", "朝鲜族",
    "满族", "侗族", "瑶族", "白族", "土家族", "哈尼族", "哈萨克族", "傣族", "黎族", "傈僳族",
    "佤族", "畲族", "高山族", "拉祜族", "水族", "东乡族", "纳西族", "景颇族", "柯尔克孜族", "土族",
    "达斡尔族", "仫佬族", "羌族", "布朗族", "撒拉族", "毛南族", "仡佬族", "锡伯族", "阿昌族", "普米族",
    "塔吉克族", "怒族", "乌孜别克族", "俄罗斯族", "鄂温克族", "德昂族", "保安族", "裕固族", "京族", "塔塔尔族",
    "独龙族", "鄂伦春族", "赫哲族", "门巴族", "珞巴族", "基诺族",
)  # fmt: skip
# Admission tables add these two next to the 56 groups.
ETHNIC_EXTRA = ("其他", "外国血统中国籍人士")
ETHNIC_LEGACY = {"崩龙族": "德昂族", "毛难族": "毛南族"}
_ETHNIC_BY_STEM = {name.removesuffix("族"): name for name in ETHNIC_GROUPS}

# GB/T 4762-1984 codes 01–13 in order, as the short forms CHSI and schools write.
POLITICAL_SHORT_NAMES = (
    "中共党员", "中共预备党员", "共青团员", "民革会员", "民盟盟员", "民建会员", "民进会员",
    "农工党党员", "致公党党员", "九三学社社员", "台盟盟员", "无党派人士", "群众",
)  # fmt: skip

GENDERS = ("男", "女")
_GENDER_CODES = {"1": "男", "2": "女", "男性": "男", "女性": "女"}

LEVELS = ("博士研究生", "硕士研究生", "第二学士学位", "本科", "专科", "预科")
STUDY_FORMS = ("普通全日制", "全日制", "非全日制", "函授", "业余", "脱产", "网络教育", "开放教育")
EDUCATION_CATEGORIES = ("普通高等教育", "成人高等教育", "高等教育自学考试", "网络教育", "开放教育", "研究生")
DURATIONS = ("1.5", "2", "2.5", "3", "3.5", "4", "4.5", "5", "5.5", "6", "7", "8")

_HALFWIDTH = {code: code - 0xFEE0 for code in range(0xFF10, 0xFF1B)}  # ０-９ and ：
_HALFWIDTH.update({code: code - 0xFEE0 for code in range(0xFF21, 0xFF3B)})  # Ａ-Ｚ
_HALFWIDTH.update({code: code - 0xFEE0 for code in range(0xFF41, 0xFF5B)})  # ａ-ｚ
_HALFWIDTH.update({0xFF0D: ord("-"), 0xFF0E: ord("."), 0xFF0F: ord("/"), 0x3000: ord(" ")})
_BRACKETS = re.compile(r"[（(][^（）()]*[)）]")
_SPACES = re.compile(r"\s+")
_DATE_PATTERNS = (
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
)
# Excel's day 0 for the 1900 date system, counting its fictitious 1900-02-29.
_EXCEL_EPOCH = datetime.date(1899, 12, 30)


def to_halfwidth(value: str) -> str:
    """Full-width digits, letters, ``－．／：`` and the ideographic space become half-width.

    Full-width brackets and CJK punctuation stay: CHSI itself writes
    ``在籍（注册学籍）``, and NFKC would also rewrite compatibility ideographs
    in names.
    """
    return value if value.isascii() else value.translate(_HALFWIDTH)


def clean_text(value) -> str:
    """Any cell value to stripped, half-width text; ``None`` becomes ``""``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        # Excel number cells arrive as floats: a phone number is not "13800000000.0".
        value = int(value)
    if not isinstance(value, str):
        value = str(value)
    return to_halfwidth(value).strip()


def compact(value) -> str:
    """Text with every inner space removed (names, identifiers)."""
    if value.__class__ is str and value.isascii() and value.isalnum():
        return value  # most identifiers: nothing to widen, strip or remove (a roster import's 250,000 cells)
    text = clean_text(value)
    # Letters and digits only (most names and identifiers) hold no space: the regex is skipped.
    return text if text.isalnum() else _SPACES.sub("", text)


def normalise_identifier(value) -> str:
    """学号, 考生号 and similar: half-width, no spaces, letters upper-case."""
    return compact(value).upper()


def normalise_id_number(value) -> str:
    """证件号码: half-width, no spaces, trailing ``x`` upper-cased."""
    return compact(value).upper()


def normalise_gender(value) -> str:
    text = compact(value)
    return _GENDER_CODES.get(text, text)


def normalise_ethnicity(value) -> str:
    """民族 as the GB/T 3304 name: legacy names and names without 族 mapped."""
    text = compact(value)
    if not text:
        return ""
    text = ETHNIC_LEGACY.get(text, text)
    if text in ETHNIC_GROUPS or text in ETHNIC_EXTRA:
        return text
    return _ETHNIC_BY_STEM.get(text.removesuffix("族"), text)


def is_known_ethnicity(value: str) -> bool:
    return value in ETHNIC_GROUPS or value in ETHNIC_EXTRA


def normalise_duration(value) -> str:
    """学制: ``4``, ``4 年``, ``4.0`` and ``４年`` all become ``4``."""
    text = compact(value).removesuffix("年")
    if not text:
        return ""
    try:
        number = float(text)
    except ValueError:
        raise ValueError(_("学制应为数字，例如 4 或 2.5")) from None
    return f"{number:g}"


def normalise_education_category(value) -> str:
    text = compact(value)
    # CHSI displayed the category as plain 普通 before 2018 (docs/domain.md §3.3).
    return "普通高等教育" if text == "普通" else text


def parse_date(value) -> datetime.date | None:
    """A date from ``YYYYMMDD``, ``YYYY-MM-DD``, ``YYYY年MM月DD日`` or a date cell.

    Returns ``None`` for an empty cell and raises ``ValueError`` for anything
    that is not a real calendar date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, (int, float)):
        # A date cell that lost its date format arrives as Excel's serial number.
        if 1 <= value < 100_000:
            return _EXCEL_EPOCH + datetime.timedelta(days=int(value))
        text = f"{value:.0f}"
    else:
        text = compact(value)
    if not text:
        return None
    for pattern in _DATE_PATTERNS:
        match = pattern.match(text)
        if match:
            year, month, day = (int(part) for part in match.groups())
            try:
                return datetime.date(year, month, day)
            except ValueError:
                break
    raise ValueError(_("无法识别的日期“%(value)s”，请使用 YYYYMMDD、YYYY-MM-DD 或 YYYY年MM月DD日") % {"value": text})


def format_chsi_date(value: datetime.date | None) -> str:
    """Dates as CHSI's card shows them: ``2017年08月28日``."""
    return f"{value.year:04d}年{value.month:02d}月{value.day:02d}日" if value else ""


def strip_major_brackets(value) -> str:
    """专业名称 without its bracketed direction: only the name is checked (docs/domain.md §8)."""
    return _BRACKETS.sub("", compact(value))
