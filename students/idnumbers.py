"""Checks on 证件号码, per 证件类型 (docs/domain.md §4).

python-stdnum's ``cn.ric`` computes the MOD 11-2 check digit and reads the
birth date, but rejects the 810000/820000/830000 residence permits (no county
code), accepts birth dates in the future, has no gender check and rejects
15-digit numbers.  This module wraps it to fill those gaps.
"""

import datetime
import re
from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _
from stdnum.cn import ric


class IdType(models.TextChoices):
    RESIDENT = "居民身份证", _("居民身份证")
    HKMO_PERMIT = "港澳居民居住证", _("港澳居民居住证")
    TW_PERMIT = "台湾居民居住证", _("台湾居民居住证")
    HKMO_PASS = "港澳居民来往内地通行证", _("港澳居民来往内地通行证")
    TW_PASS = "台湾居民来往大陆通行证", _("台湾居民来往大陆通行证")
    PASSPORT = "护照", _("护照")
    FOREIGN_PERMANENT = "外国人永久居留身份证", _("外国人永久居留身份证")
    OTHER = "其他", _("其他")


# Types that follow GB 11643 (check digit, birth date, gender digit).
ID_FORMAT_TYPES = {IdType.RESIDENT, IdType.HKMO_PERMIT, IdType.TW_PERMIT}
_ID18 = re.compile(r"^\d{17}[\dX]$")
_ID15 = re.compile(r"^\d{15}$")
_GENERIC = re.compile(r"^[A-Z0-9]{5,20}$")

_ID_TYPE_ALIASES = {
    "": IdType.RESIDENT,
    "1": IdType.RESIDENT,
    "身份证": IdType.RESIDENT,
    "居民身份证": IdType.RESIDENT,
    "A": IdType.PASSPORT,
    "8": IdType.TW_PASS,
    "Z": IdType.OTHER,
}


def normalise_id_type(value: str) -> str:
    text = (value or "").strip()
    if text in _ID_TYPE_ALIASES:
        return _ID_TYPE_ALIASES[text]
    if text in IdType.values:
        return text
    raise ValueError(_("未知的证件类型“%(value)s”") % {"value": text})


def effective_id_type(id_type: str, number: str) -> str:
    """The type to check by: an 18-digit 81/82/83 number is a residence permit."""
    if id_type == IdType.RESIDENT and number[:2] in ("81", "82") and _ID18.match(number):
        return IdType.HKMO_PERMIT
    if id_type == IdType.RESIDENT and number[:2] == "83" and _ID18.match(number):
        return IdType.TW_PERMIT
    return id_type


@dataclass(frozen=True)
class IdProblem:
    code: str
    message: str


def check_digit(number17: str) -> str:
    """The MOD 11-2 check character for the first 17 digits."""
    # ric.calc_check_digit() drops the last character of its argument (it wants
    # the full 18-character number), so a placeholder takes the check position.
    return ric.calc_check_digit(number17 + "X")


def birth_date_of(number: str) -> datetime.date | None:
    """The birth date an ID-format number encodes, or ``None`` if it has none."""
    try:
        if _ID18.match(number):
            return datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        if _ID15.match(number):
            return datetime.date(1900 + int(number[6:8]), int(number[8:10]), int(number[10:12]))
    except ValueError:
        return None
    return None


def gender_of(number: str) -> str | None:
    """男 or 女 from the sequence digit (odd is male), or ``None``."""
    if _ID18.match(number):
        digit = number[16]
    elif _ID15.match(number):
        digit = number[14]
    else:
        return None
    return "男" if int(digit) % 2 else "女"


def upgrade_15_to_18(number: str) -> str:
    body = number[:6] + "19" + number[6:]
    return body + check_digit(body)


def mask(number: str) -> str:
    """The last four characters behind stars, as every list shows an ID number."""
    if not number:
        return ""
    visible = number[-4:] if len(number) > 4 else number[-1:]
    return "*" * (len(number) - len(visible)) + visible


def check_id_number(number: str, id_type: str, *, today: datetime.date | None = None) -> list[IdProblem]:
    """Problems with one number on its own (not against the other fields)."""
    today = today or datetime.date.today()
    kind = effective_id_type(id_type, number)
    if kind not in ID_FORMAT_TYPES:
        if not _GENERIC.match(number):
            return [IdProblem("id_format", str(_("证件号码应为 5 到 20 位字母或数字")))]
        return []
    if _ID15.match(number):
        return [
            IdProblem(
                "id_15_digit",
                # The 18-digit form is not quoted: finding messages appear in lists and exports.
                str(_("证件号码是 15 位旧号码，应更换为 18 位身份证号码")),
            )
        ]
    if not _ID18.match(number):
        return [IdProblem("id_format", str(_("身份证号码应为 18 位，前 17 位为数字，最后一位为数字或 X")))]
    problems = []
    if check_digit(number[:17]) != number[17]:
        problems.append(
            IdProblem(
                "id_checksum",
                str(_("身份证号码校验位错误：按前 17 位应为 %(digit)s") % {"digit": check_digit(number[:17])}),
            )
        )
    born = birth_date_of(number)
    if born is None:
        problems.append(IdProblem("id_birth_date_invalid", str(_("身份证号码中的出生日期不是有效日期"))))
    elif born > today:
        problems.append(IdProblem("id_birth_date_future", str(_("身份证号码中的出生日期在未来"))))
    return problems


_IDENTIFIER = re.compile(r"^[0-9A-Za-z]{5,20}$")


def mask_value(text: str) -> str:
    """A value whose field is not known (the audit trail's diff of a flag): masked if it looks
    like an identifier (any 证件号码 format), else with any ID number inside it masked."""
    from registrar_portal.logging import mask_text

    text = text or ""
    if _IDENTIFIER.match(text) and any(ch.isdigit() for ch in text):
        return mask(text)
    return mask_text(text)
