"""Template filters for roll fields: people read labels, CHSI codes follow in a lighter style."""

from django import template
from django.utils.html import format_html

from students import fields as roll_fields

register = template.Library()


@register.filter
def field_label(code) -> str:
    """``证件号码 SFZH``: the field's label with its CHSI code after it, or "—" for none."""
    if not code:
        return "—"
    label = roll_fields.label_of(code)
    if label == code:
        return code
    return format_html('{} <span class="hint field-code">{}</span>', label, code)
