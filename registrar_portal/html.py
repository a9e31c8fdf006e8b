"""Printing values into HTML from Python, for the parts of pages printed without template nodes.

Some repeated parts of busy pages (the top bar, the checklist rows, the dashboards' count rows) are
printed in Python because template nodes cost more than the page's own work (docs/performance.md §7).
They escape through ``escape`` so that they print exactly what ``{{ value }}`` would.
"""

import functools
import html
import re

from django.utils import translation
from django.utils.translation import gettext

# What html.escape replaces; most printed values hold none of it.
_NEEDS_ESCAPING = re.compile("[&<>\"']").search


def escape(value) -> str:
    """As ``{{ value }}`` prints it: ``str()`` first (a lazy label, a Message), then escaped unless marked safe.

    The same as ``conditional_escape`` (which is ``html.escape``) without its lazy-argument wrapper, which
    costs more than the escaping itself at a few hundred calls a page.  A plain ``str`` (never marked safe)
    is searched once for what ``html.escape`` would replace, instead of five replacements.
    """
    if type(value) is str:
        return html.escape(value) if _NEEDS_ESCAPING(value) else value
    if not isinstance(value, str):
        value = str(value)
    return value.__html__() if hasattr(value, "__html__") else html.escape(value)


def csrf_input(context) -> str:
    """``{% csrf_token %}`` as Django prints it: the hidden input, or nothing without a token."""
    token = context.get("csrf_token")
    if not token or token == "NOTPROVIDED":
        return ""
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(token)}">'


def fixed_texts(words: dict[str, str], *, escaped: bool = False):
    """A function of the language giving ``words`` (key → a message id marked with ``gettext_noop``) translated,
    each language once per process: a ``gettext`` per request cost about as much as printing a row.
    ``escaped``: as ``{{ value }}`` would print them; otherwise as ``{% translate %}`` of a literal does."""

    @functools.cache
    def in_language(language: str | None) -> dict[str, str]:
        with translation.override(language):
            return {key: escape(gettext(text)) if escaped else gettext(text) for key, text in words.items()}

    return in_language
