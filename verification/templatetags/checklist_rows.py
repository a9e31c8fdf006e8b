"""The student's checklist rows, printed in Python: ``{% check_rows %}``.

Every student opens this page, and each of its ~20 rows is the same dozen elements.  As template
nodes they were most of the page's CPU (docs/performance.md §4); here each row is one string
format over values ``selectors.own_checklist_rows`` and the view have already made ready to print.
The whole page (``checklist.html``) and an in-place answer's response (``_check_answered.html``)
print the rows with this one tag, so both stay the same.  Values are escaped as the template
engine escapes them (``conditional_escape``).
"""

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext

register = template.Library()


def _e(value) -> str:
    # As {{ value }} prints it: str() first (a lazy label, a Message), then escaped unless marked safe.
    return conditional_escape(value if isinstance(value, str) else str(value))


def _csrf_input(context) -> str:
    # As {% csrf_token %} prints it.
    token = context.get("csrf_token")
    if not token or token == "NOTPROVIDED":
        return ""
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', token)


@register.simple_tag(takes_context=True)
def check_rows(context):
    """The ``<li>`` of each row in ``rows``, with its 正确 / 有误 answers when ``writable``."""
    ok_label, bad_label, amend_label = _e(gettext("正确")), _e(gettext("有误")), _e(gettext("修改报错"))
    empty, flag_prefix, reason_prefix = _e(gettext("（空）")), _e(gettext("报错：")), _e(gettext("退回原因："))
    writable, amend_returned = context.get("writable"), context.get("amend_returned")
    csrf_input = _csrf_input(context) if writable else ""
    version = _e(context.get("version"))
    out = []
    for row in context.get("rows") or ():
        code = _e(row["code"])
        label = _e(row["label"])
        status = row["status"]
        out.append(f'<li id="field-{code}" class="check-row{f" answered-{_e(status)}" if status else ""}">\n')
        for message in row["messages"]:
            out.append(f'  <p class="messages field-message {_e(message.level_tag)}" role="status">{_e(message)}</p>\n')
        photo = row["photo"]
        if photo:
            value = (
                f'<span class="value photo-box"><img src="{_e(photo["src"])}" loading="lazy" '
                f'width="{photo["width"]}" height="{photo["height"]}" alt="{label}"></span>'
            )
        else:
            value = f'<span class="value">{_e(row["value"]) if row["value"] else empty}</span>'
        out.append(f'  <div class="field-line">\n    <span class="label">{label}</span>\n    {value}\n  </div>\n')
        if row["reopened"]:
            if row["is_photo"]:
                notice = _e(gettext("照片已更新，请查看新照片并重新核对。"))
            else:
                notice = gettext("学籍数据已更新：%(old)s → %(new)s，请重新核对。") % {
                    "old": _e(row["previous_value"]),
                    "new": _e(row["value"]),
                }
            out.append(f'  <p class="notice">{notice}</p>\n')
        for hint in row["hints"]:
            out.append(f'  <p class="hint finding">⚠ {_e(hint)}</p>\n')
        if row["help_text"]:
            out.append(f'  <p class="hint">{_e(row["help_text"])}</p>\n')
        flag = row["flag"]
        if flag:
            out.append(
                f'  <p class="flag-status flag-{_e(flag.status)}">\n'
                f'    <a href="{_e(row["flag_detail_url"])}">{flag_prefix}{_e(flag.claimed_value)} · '
                f"{_e(flag.get_status_display())}</a>\n"
            )
            if flag.is_returned:
                out.append(f'    <br><span class="reason">{reason_prefix}{_e(flag.return_reason)}</span>\n')
            out.append("  </p>\n")
        out.append('  <div class="answer">\n')
        if row["badge"]:
            out.append(f'    <span class="answer-badge">{_e(row["badge"])}</span>\n')
        # htmx posts the same form and swaps in the row the server returns; without JavaScript it posts and
        # reloads.  有误 opens its form in the row's flag slot (htmx), or as a page.
        if writable:
            confirm_url, flag_url = _e(row["confirm_url"]), _e(row["flag_url"])
            pressed = ' aria-pressed="true"' if row["confirmed"] else ""
            out.append(
                f'    <form method="post" action="{confirm_url}" class="inline" hx-post="{confirm_url}" '
                f'hx-target="closest li" hx-swap="outerHTML">{csrf_input}\n'
                f'      <input type="hidden" name="record_version" value="{version}">\n'
                f'      <button type="submit" class="ok"{pressed}>{ok_label}</button>\n'
                "    </form>\n"
                f'    <a class="button bad" href="{flag_url}" hx-get="{flag_url}" hx-target="#flag-slot-{code}">'
                f"{amend_label if flag and flag.is_open else bad_label}</a>\n"
            )
        elif amend_returned and flag and flag.is_returned:
            out.append(f'    <a class="button bad" href="{_e(row["flag_url"])}">{amend_label}</a>\n')
        out.append(f'  </div>\n  <div class="flag-slot" id="flag-slot-{code}"></div>\n</li>\n')
    return mark_safe("".join(out))
