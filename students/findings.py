"""Data-quality findings on one roll record (docs/domain.md §4.2).

Findings never stop an import: CHSI may itself hold the wrong value, and the
student is the one who can tell.  They are stored for registrar staff and
shown to the student as hints next to the field.
"""

import datetime
from dataclasses import dataclass

from django.utils.translation import gettext as _

from . import idnumbers, normalize
from .idnumbers import IdType

# Usual 学制 per 层次; anything else is worth a second look, not an error.
USUAL_DURATIONS = {
    "本科": {"4", "5", "6", "7", "8"},
    "专科": {"2", "2.5", "3", "5"},
    "硕士研究生": {"2", "2.5", "3"},
    "博士研究生": {"3", "4", "5", "6"},
    "第二学士学位": {"2"},
    "预科": {"1", "1.5"},
}


REGISTERED = "在籍（注册学籍）"


@dataclass(frozen=True)
class Finding:
    field_code: str
    kind: str
    message: str


def _iso(value: datetime.date) -> str:
    return value.isoformat()


def _add_years(day: datetime.date, years: float) -> datetime.date:
    whole = int(years)
    try:
        shifted = day.replace(year=day.year + whole)
    except ValueError:  # 29 February
        shifted = day.replace(year=day.year + whole, day=28)
    return shifted + datetime.timedelta(days=round((years - whole) * 365))


def record_findings(values: dict, *, today: datetime.date | None = None) -> list[Finding]:
    """Findings for one record given its normalised values (keys as in the field registry)."""
    today = today or datetime.date.today()
    found: list[Finding] = []
    number = values.get("id_number") or ""
    id_type = values.get("id_type") or IdType.RESIDENT
    kind = idnumbers.effective_id_type(id_type, number)
    birth_date = values.get("birth_date")
    gender = values.get("gender") or ""

    if number:
        for problem in idnumbers.check_id_number(number, id_type, today=today):
            found.append(Finding("SFZH", problem.code, problem.message))
        if kind in idnumbers.ID_FORMAT_TYPES:
            id_birth = idnumbers.birth_date_of(number)
            if id_birth and birth_date and id_birth != birth_date:
                found.append(
                    Finding(
                        "CSRQ",
                        "birth_date_mismatch",
                        _("身份证号码对应的出生日期为 %(id)s，记录为 %(record)s")
                        % {"id": _iso(id_birth), "record": _iso(birth_date)},
                    )
                )
            id_gender = idnumbers.gender_of(number)
            if id_gender and gender in normalize.GENDERS and id_gender != gender:
                found.append(
                    Finding(
                        "XB",
                        "gender_mismatch",
                        _("身份证号码对应的性别为%(id)s，记录为%(record)s") % {"id": id_gender, "record": gender},
                    )
                )

    if birth_date and birth_date > today:
        found.append(Finding("CSRQ", "birth_date_future", _("出生日期 %(date)s 在未来") % {"date": _iso(birth_date)}))

    ethnicity = values.get("ethnicity") or ""
    # 港澳台 students record their home region in 民族 (docs/domain.md §4.4).
    if ethnicity and kind not in (IdType.HKMO_PERMIT, IdType.TW_PERMIT, IdType.HKMO_PASS, IdType.TW_PASS):
        if not normalize.is_known_ethnicity(ethnicity):
            found.append(
                Finding("MZ", "unknown_ethnicity", _("民族“%(value)s”不在 GB/T 3304 名录中") % {"value": ethnicity})
            )

    level, duration = values.get("level") or "", values.get("duration") or ""
    if level in USUAL_DURATIONS and duration and duration not in USUAL_DURATIONS[level]:
        found.append(
            Finding(
                "XZ",
                "unusual_duration",
                _("%(level)s 的学制为 %(duration)s 年，不常见") % {"level": level, "duration": duration},
            )
        )

    # 在籍（注册学籍） is the only status a student in the check should have (docs/domain.md §3.5):
    # 休学, 保留学籍 or 不在籍 are for the registrar to look at (and usually to exclude from the campaign).
    roll_status = values.get("roll_status") or ""
    if roll_status and roll_status != REGISTERED:
        found.append(
            Finding(
                "XJZT",
                "roll_status",
                _("学籍状态为“%(value)s”，不是“%(registered)s”") % {"value": roll_status, "registered": REGISTERED},
            )
        )

    admitted, leaving = values.get("admission_date"), values.get("expected_graduation_date")
    if admitted and leaving and duration:
        expected = _add_years(admitted, float(duration))
        if abs((leaving - expected).days) > 366:
            found.append(
                Finding(
                    "YJBYRQ",
                    "graduation_date_off",
                    _("预计毕业日期 %(leaving)s 与入学日期加学制（约 %(expected)s）相差超过一年")
                    % {"leaving": _iso(leaving), "expected": _iso(expected)},
                )
            )
    return found
