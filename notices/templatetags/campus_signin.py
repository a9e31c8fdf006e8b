"""The sign-in page's 企业微信登录 / 钉钉登录 buttons, shown only for a platform the school has configured."""

from django import template

register = template.Library()


@register.inclusion_tag("notices/partials/campus_signin_buttons.html")
def campus_signin_buttons(next_url=""):
    from notices import signin

    return {"platforms": signin.available(), "next": next_url}
