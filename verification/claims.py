"""Validation of the "correct value" a student gives when flagging a field."""

from django.utils.translation import gettext as _

from students import idnumbers, normalize
from students.fields import RollField

MAX_LENGTH = 200


def clean_claimed_value(field: RollField, raw, *, id_type: str = idnumbers.IdType.RESIDENT) -> str:
    """The claimed value in stored form, or ``ValueError`` saying what is wrong."""
    text = normalize.clean_text(raw)
    if not text:
        raise ValueError(_("请填写正确的值"))
    if field.is_date:
        day = normalize.parse_date(text)
        return day.isoformat()
    value = field.normalise(text)
    if field.choices and value not in field.choices:
        raise ValueError(_("请从列表中选择"))
    if field.key == "id_number":
        problems = idnumbers.check_id_number(value, id_type)
        if problems:
            raise ValueError(problems[0].message)
    if field.key == "name" and any(ch.isdigit() for ch in value):
        raise ValueError(_("姓名不能包含数字"))
    if len(value) > MAX_LENGTH:
        raise ValueError(_("不能超过 %(n)s 个字符") % {"n": MAX_LENGTH})
    return value
