from django import template

from notices.services import request_key_new

register = template.Library()


@register.simple_tag
def request_key():
    """A one-time key for a form, so that submitting it twice acts once."""
    return request_key_new()
