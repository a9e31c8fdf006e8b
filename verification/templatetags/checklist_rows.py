"""The student's checklist rows, printed in Python: ``{% check_rows %}``.

Every student opens this page, and each of its ~20 rows is the same dozen elements.  As template
nodes they were most of the page's CPU (docs/performance.md §4); here each row is one string
format over values ``selectors.own_checklist_rows`` and the view have already made ready to print.
The whole page (``checklist.html``) and an in-place answer's response (``_check_answered.html``)
print the rows with this one tag, so both stay the same.  Values are escaped as the template
engine escapes them (``conditional_escape``).
"""

import functools

from django import template
from django.template.defaultfilters import linebreaks_filter, linebreaksbr
from django.utils.safestring import mark_safe
from django.utils.timezone import template_localtime
from django.utils.translation import get_language, gettext, gettext_noop, ngettext

from registrar_portal.html import csrf_input as _csrf_input
from registrar_portal.html import escape, fixed_texts

register = template.Library()


_e = escape  # registrar_portal/html.py


# The rows' fixed words, translated and escaped once per language.
_texts = fixed_texts(
    {
        "ok": gettext_noop("正确"),
        "bad": gettext_noop("有误"),
        "amend": gettext_noop("修改报错"),
        "empty": gettext_noop("（空）"),
        "flag_prefix": gettext_noop("报错："),
        "reason_prefix": gettext_noop("退回原因："),
        "photo_updated": gettext_noop("照片已更新，请查看新照片并重新核对。"),
    },
    escaped=True,
)


@register.simple_tag(takes_context=True)
def check_rows(context):
    """The ``<li>`` of each row in ``rows``, with its 正确 / 有误 answers when ``writable``."""
    texts = _texts(get_language())
    ok_label, bad_label, amend_label = texts["ok"], texts["bad"], texts["amend"]
    empty, flag_prefix, reason_prefix = texts["empty"], texts["flag_prefix"], texts["reason_prefix"]
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
                notice = texts["photo_updated"]
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


# ---------------------------------------------------------------------------
# The rest of the page, printed in Python too: {% check_page %}, {% check_state %}, {% check_confirm %}
# ---------------------------------------------------------------------------
#
# The page's template nodes, its two includes and the confirm box's form widgets cost more CPU than the
# rows once the rows were printed here (docs/performance.md §7).  Each function prints exactly what the
# template (and the widgets' templates) printed, whitespace included, so that a change of layout is made
# here.  Texts in {% translate %} were not escaped (literals are safe); values and blocktranslate's
# arguments were.


@functools.cache
def _page_texts(language: str) -> dict:
    from ..forms import ConfirmAllForm, ConfirmRestForm

    words = {
        "my_checks": gettext_noop("我的核对"),
        "extended": gettext_noop("（个人延期）"),
        "chsi_hint": gettext_noop(
            "请登录学信网（www.chsi.com.cn）→ 学信档案 → 高等教育信息 → 学籍信息，对照下面每一项，逐项选择“正确”或“有误”。"
        ),
        "no_admission_photo": gettext_noop(
            "学信网上没有录取照片？找不到录取照片不影响新生学籍核对，正常核对其他信息即可。"
        ),
        "no_graduation_photo": gettext_noop(
            "学校尚未收到你的学历照片：学历照片在毕业前的图像采集中拍摄，请按院系通知参加采集。"
        ),
        "collection_code": gettext_noop("如何获取采集码"),
        "info_only": gettext_noop("仅供参考，无需核对"),
        "school_record": gettext_noop("学校记录"),
        "rest_correct": gettext_noop("其余各项正确"),
        "rest_hint": gettext_noop("你已报错的项目保持不变，其余尚未选择“正确”的项目一次确认。"),
        "all_correct": gettext_noop("全部正确"),
        "confirm_all": gettext_noop("确认全部正确"),
        "photo_no_matter": gettext_noop("录取照片缺失不影响本次核对。"),
        "problems": gettext_noop("遇到问题？"),
        "faq": gettext_noop("常见问题：身份证号已被注册、查不到学籍、专业带括号……"),
        "submitted": gettext_noop("已提交的求助："),
    }
    # And blocktranslate's formats (their arguments are escaped).
    words |= {
        "deadline": gettext_noop("截止时间：%(deadline)s"),
        "returned": gettext_noop("被退回的报错请在 %(deadline)s 前修改后重新提交，逾期报错将关闭。"),
        "ticket": gettext_noop("%(kind)s（%(status)s）"),
        "reply": gettext_noop("学籍科回复（%(when)s）："),
    }
    texts = {key: gettext(text) for key, text in words.items()}
    # {{ form.attest.label }} is escaped like any value.
    texts["attest_all"] = _e(ConfirmAllForm.base_fields["attest"].label)
    texts["attest_rest"] = _e(ConfirmRestForm.base_fields["attest"].label)
    return texts


def _when(value) -> str:
    # As {{ value|date:"Y-m-d H:i" }} prints it (in the current time zone), without the filter's format look-ups.
    return template_localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""


@functools.cache
def _state_labels(language: str) -> dict:
    # get_state_display() builds its choices dict on every call.
    from ..models import Checklist

    return {value: _e(label) for value, label in Checklist.State.choices}


@register.simple_tag(takes_context=True)
def check_state(context):
    """The state badge (swapped out of band after an in-place answer)."""
    oob = ' hx-swap-oob="true"' if context.get("oob") else ""
    state = context["checklist"].state
    label = _state_labels(get_language()).get(state) or _e(state)
    return mark_safe(f'<p class="state-badge" id="checklist-state"{oob}>{label}</p>\n')


@register.simple_tag(takes_context=True)
def check_confirm(context):
    """全部正确, or 其余各项正确 once a field is flagged (swapped out of band after an in-place answer)."""
    oob = ' hx-swap-oob="true"' if context.get("oob") else ""
    out = [f'<div id="checklist-confirm"{oob}>\n']
    if context.get("writable"):
        texts = _page_texts(get_language())
        urls, version = context["urls"], _e(context.get("version"))
        csrf_input = _csrf_input(context)
        record_version = f'<input type="hidden" name="record_version" value="{version}" id="id_record_version">'
        attest = '<input type="checkbox" name="attest" required id="id_attest">'
        out.append("\n")
        if context.get("flagged"):
            rest_count = context.get("rest_count")
            if rest_count:
                count = ngettext("确认其余 %(n)s 项正确", "确认其余 %(n)s 项正确", rest_count) % {"n": _e(rest_count)}
                out.append(
                    '\n<section class="card" id="confirm-all">\n'
                    f"  <h2>{texts['rest_correct']}</h2>\n"
                    f'  <p class="hint">{texts["rest_hint"]}</p>\n'
                    f'  <form method="post" action="{_e(urls["confirm_rest"])}">{csrf_input}\n'
                    f"    {record_version}\n"
                    f'    <p class="attest"><label>{attest} {texts["attest_rest"]}</label></p>\n'
                    f'    <button type="submit" class="primary">{count}</button>\n'
                    "  </form>\n"
                    "</section>\n"
                )
        else:
            out.append(
                '\n<section class="card" id="confirm-all">\n'
                f"  <h2>{texts['all_correct']}</h2>\n"
                f'  <form method="post" action="{_e(urls["confirm_all"])}">{csrf_input}\n'
                f"    {record_version}\n"
                f'    <p class="attest"><label>{attest} {texts["attest_all"]}</label></p>\n'
                f'    <button type="submit" class="primary">{texts["confirm_all"]}</button>\n'
                "  </form>\n"
                f'  <p class="hint">{texts["photo_no_matter"]}</p>\n'
                "</section>\n"
            )
        out.append("\n")
    out.append("\n</div>\n")
    return mark_safe("".join(out))


@register.simple_tag(takes_context=True)
def check_page(context):
    """The page's content: the state card, the CHSI card with its rows, the fields shown for information,
    the confirm box and the help section."""
    texts = _page_texts(get_language())
    checklist, campaign, urls = context["checklist"], context["campaign"], context["urls"]
    writable, name = context.get("writable"), _e(campaign.name)
    out = [
        "\n",
        f'<p class="crumbs"><a href="{_e(urls["my_checks"])}">{texts["my_checks"]}</a> › {name}</p>\n',
        f'<section class="card status-card state-{_e(checklist.state)}">\n',
        f"  <h1>{name}</h1>\n",
        f"  {check_state(context)}\n",
        '  <p class="hint">',
        texts["deadline"] % {"deadline": _when(context.get("deadline"))},
    ]
    if checklist.deadline and checklist.deadline > campaign.closes_at:
        out.append(texts["extended"])
    if not writable:
        out.append(f" · {_e(campaign.kind_spec.closed_message)}")
    out.append("</p>\n  ")
    if not writable and context.get("amend_returned") and checklist.state == "returned":
        notice = texts["returned"] % {"deadline": _when(campaign.departments_deadline)}
        out.append(f'<p class="notice">{notice}</p>')
    out.append("\n  ")
    if campaign.instructions:
        out.append(f'<div class="instructions">{linebreaks_filter(campaign.instructions, autoescape=True)}</div>')
    out.append(
        f'\n  <p class="hint">{texts["chsi_hint"]}</p>\n</section>\n\n'
        f'<section class="card chsi-card">\n  <h2 class="card-heading">{_e(context["student"].card_heading)}</h2>\n  '
    )
    for kind in context.get("missing_photos") or ():
        if kind == "admission":
            out.append(f'\n    <p class="hint missing-photo">{texts["no_admission_photo"]}</p>\n    \n  ')
        else:
            out.append(
                f'\n    <p class="hint missing-photo">{texts["no_graduation_photo"]} '
                f'<a href="{_e(urls["image_collection_code"])}">{texts["collection_code"]}</a></p>\n  '
            )
    out.append(f'\n  <ol class="checklist">\n  {check_rows(context)}\n  </ol>\n</section>\n\n')
    info_rows = context.get("info_rows")
    if info_rows:
        out.append(f'\n<section class="card">\n  <h2>{texts["info_only"]}</h2>\n  <dl class="record">\n  ')
        for row in info_rows:
            field = row["field"]
            out.append(
                f"\n    <div><dt>{_e(field.label)} <small>{texts['school_record']}</small></dt>"
                f'<dd>{_e(row["value"] or "—")}<br><span class="hint">{_e(field.help_text)}</span></dd></div>\n  '
            )
        out.append("\n  </dl>\n</section>\n")
    out.append(f"\n\n{check_confirm(context)}\n\n")
    out.append(f'<section class="card">\n  <h2>{texts["problems"]}</h2>\n  <ul class="plain">\n  ')
    out += [
        f'<li><a href="{_e(kind["url"])}">{_e(kind["label"])}</a></li>' for kind in context.get("support_kinds") or ()
    ]
    out.append(f'\n  </ul>\n  <p><a href="{_e(urls["help_index"])}">{texts["faq"]}</a></p>\n  ')
    support_requests = context.get("support_requests")
    if support_requests:
        out.append(f'<h3 id="help">{texts["submitted"]}</h3>\n  <ul class="plain">\n  ')
        for item in support_requests:
            heading = texts["ticket"] % {
                "kind": _e(item.get_kind_display()),
                "status": _e(item.get_status_display()),
            }
            out.append(f'<li>{heading} <span class="hint">{_when(item.created_at)}</span>\n    ')
            for reply in item.replies:
                when = texts["reply"] % {"when": _when(reply.created_at)}
                out.append(
                    f'<blockquote class="reply"><span class="hint">{when}</span>'
                    f"{linebreaksbr(reply.text, autoescape=True)}</blockquote>"
                )
            out.append("</li>\n  ")
        out.append("\n  </ul>")
    out.append("\n</section>\n")
    return mark_safe("".join(out))
