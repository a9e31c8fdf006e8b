"""Printing values into HTML from Python, for the parts of pages printed without template nodes.

Some repeated parts of busy pages (the top bar, the checklist rows, the dashboards' count rows) are
printed in Python because template nodes cost more than the page's own work (docs/performance.md §7).
They escape through ``escape`` so that they print exactly what ``{{ value }}`` would.
"""

import html
import re

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
