"""What each kind of campaign checks and when: the one table the form defaults and the pages read.

A new-student campaign (autumn) checks the fields students can see on CHSI's card and
their 录取照片; the graduate campaign (spring) checks what goes on the diploma registration:
the main fields, the 学历照片 beside the 录取照片, and the dates of the stay, and closes in
April, the last chance before the record is frozen (docs/domain.md §6.4, §6.5).
"""

import datetime
from dataclasses import dataclass

from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from students import fields as roll_fields


@dataclass(frozen=True)
class CampaignKind:
    key: str  # Campaign.Kind value
    field_codes: tuple[str, ...]  # checked by default, in the registry's codes
    photo_kinds: tuple[str, ...]  # students.models.Photo.Kind values shown on the card
    opens: tuple[int, int]  # default (month, day) the campaign opens
    closes: tuple[int, int]  # default (month, day) of the deadline
    # What students read once the campaign has closed.
    closed_message: Promise
    # A missing photo of these kinds is listed for departments (collection at 图像采集).
    collect_photo: str = ""

    def default_dates(self, now=None) -> tuple[datetime.datetime, datetime.datetime]:
        """The next window of this kind: opening and deadline (end of the day) in the school's time zone."""
        today = timezone.localdate(now)
        year = today.year
        closes = datetime.date(year, *self.closes)
        if closes < today:
            year += 1
            closes = datetime.date(year, *self.closes)
        opens = datetime.date(year, *self.opens)
        if opens > closes:
            opens = datetime.date(year - 1, *self.opens)
        tz = timezone.get_current_timezone()
        return (
            datetime.datetime.combine(max(opens, today), datetime.time(8, 0), tzinfo=tz),
            datetime.datetime.combine(closes, datetime.time(23, 59), tzinfo=tz),
        )


def _shown() -> list[roll_fields.RollField]:
    return [f for f in roll_fields.ROLL_FIELDS if f.student_check != roll_fields.StudentCheck.HIDDEN]


# The fields of the diploma registration beyond the main ones (docs/domain.md §2.3).
GRADUATION_FIELD_CODES = ("RXRQ", "YJBYRQ")

NEW_STUDENTS = CampaignKind(
    key="new",
    field_codes=("LQZP", *(f.code for f in _shown())),
    photo_kinds=("admission",),
    opens=(10, 22),
    closes=(11, 30),
    closed_message=_("核对已截止，页面只读"),
)

GRADUATING = CampaignKind(
    key="graduating",
    field_codes=(
        "LQZP",
        "XLZP",
        *(f.code for f in _shown() if f.main or f.code in GRADUATION_FIELD_CODES),
    ),
    photo_kinds=("admission", "graduation"),
    opens=(3, 1),
    closes=(4, 30),
    closed_message=_(
        "毕业生学籍核对已截止，学籍信息将用于学历证书电子注册，不能再修改。"
        "毕业离校前的4月是最后的更正机会，此后学校不再受理学历信息更正。"
    ),
    collect_photo="graduation",
)

CAMPAIGN_KINDS: dict[str, CampaignKind] = {kind.key: kind for kind in (NEW_STUDENTS, GRADUATING)}


def kind_of(key: str) -> CampaignKind:
    return CAMPAIGN_KINDS.get(key, NEW_STUDENTS)


def form_initial(key: str, now=None) -> dict:
    """A new campaign form's defaults for a kind: its fields and its window."""
    kind = kind_of(key)
    opens_at, closes_at = kind.default_dates(now)
    return {
        "kind": kind.key,
        "field_codes": list(kind.field_codes),
        "opens_at": timezone.localtime(opens_at),
        "closes_at": timezone.localtime(closes_at),
    }
