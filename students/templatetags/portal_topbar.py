"""``{% top_bar %}``: the top bar of every page (templates/base.html), printed in Python.

As template nodes it cost more CPU than many pages' own content (two dozen variable look-ups, five
translations, two CSRF inputs: docs/performance.md §7).  It prints exactly what the template printed, from
the same context (``nav_url`` and ``nav_html`` from registrar_portal/navigation.py, ``unread_messages``,
``school_name``, ``user``, ``request``, ``LANGUAGE_CODE``), escaping values as the template engine does.
"""

import functools
import html

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.utils.safestring import mark_safe
from django.utils.translation import get_language, gettext_noop

from registrar_portal.html import csrf_input as _csrf_input
from registrar_portal.html import escape, fixed_texts

register = template.Library()


_e = escape  # registrar_portal/html.py


# {% translate "…" %} of a literal prints the translation unescaped.
_texts = fixed_texts(
    {
        "brand": gettext_noop("学籍核对"),
        "messages": gettext_noop("消息"),
        "unread": gettext_noop("未读消息"),
        "help": gettext_noop("帮助"),
        "logout": gettext_noop("退出"),
    }
)


def _lookup(value, key) -> str:
    # {{ value.key }} of a dict-like (nav_url): "" when missing.
    try:
        return _e(value[key])
    except (TypeError, KeyError):
        return ""


@register.simple_tag
def static_url(path: str) -> str:
    """``{% static path %}``, looked up once per process: with the manifest storage each look-up cost about
    60 µs, and every page has two or three."""
    return _static_url(path, settings.STATIC_URL, settings.STORAGES["staticfiles"]["BACKEND"])


@functools.cache
def _static_url(path: str, _static_prefix: str, _backend: str) -> str:
    # Keyed by the settings a test may change, too.
    return mark_safe(html.escape(static(path)))


@register.simple_tag(takes_context=True)
def top_bar(context):
    texts = _texts(get_language())
    nav_url, request, user = context.get("nav_url"), context.get("request"), context.get("user")
    match = getattr(request, "resolver_match", None)
    view_name = getattr(match, "view_name", "")
    csrf_input = _csrf_input(context)
    out = [
        '<header class="topbar">\n'
        f'    <a class="brand" href="{_lookup(nav_url, "home")}">{texts["brand"]}'
        f"<small>{_e(context.get('school_name', ''))}</small></a>\n"
        "    <nav>\n      "
    ]
    if getattr(user, "is_authenticated", False):
        messages_current = ' aria-current="page"' if view_name == "notices:message_list" else ""
        help_current = ' aria-current="page"' if view_name == "notices:help_index" else ""
        unread = context.get("unread_messages")
        badge = f' <span class="badge" title="{texts["unread"]}">{_e(unread)}</span>' if unread else ""
        out.append(
            f"\n        {_e(context.get('nav_html', ''))}\n"
            f'        <a href="{_lookup(nav_url, "messages")}" class="messages-link"{messages_current}>'
            f"{texts['messages']}{badge}</a>\n"
            f'        <a href="{_lookup(nav_url, "help")}"{help_current}>{texts["help"]}</a>\n'
            f'        <form method="post" action="{_lookup(nav_url, "logout")}" class="inline">{csrf_input}'
            f'<button type="submit" class="link">{texts["logout"]}</button></form>\n      '
        )
    if context.get("LANGUAGE_CODE") == "en":
        language = '<button type="submit" name="language" value="zh-hans" class="link">中文</button>'
    else:
        language = '<button type="submit" name="language" value="en" class="link">English</button>'
    full_path = _e(request.get_full_path()) if request is not None else ""
    out.append(
        f'\n      <form method="post" action="{_lookup(nav_url, "set_language")}" class="inline lang">{csrf_input}\n'
        f'        <input type="hidden" name="next" value="{full_path}">\n'
        f"        {language}\n"
        "      </form>\n"
        "    </nav>\n"
        "  </header>"
    )
    return mark_safe("".join(out))
