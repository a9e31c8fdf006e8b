"""The dashboards' repeated markup, printed in Python: ``{% counts_cells %}``, ``{% class_progress_rows %}``,
``{% department_progress_rows %}`` and ``{% chart_bars %}``.

Each row of counts was an ``{% include %}`` of seven cells, and each bar of the chart a
``{% blocktranslate %}`` with a date filter: together most of the school page's rendering time
(docs/performance.md §6).  Here each is one string format, printing what the template printed
(numbers as ``str``, as ``{{ n }}`` prints them without thousand separators; values escaped as
the template engine escapes them), so the pages are unchanged.
"""

import functools

from django import template
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, gettext_noop

from registrar_portal.html import csrf_input as _csrf_input
from registrar_portal.html import escape, fixed_texts

register = template.Library()


_e = escape  # registrar_portal/html.py


def _cells(counts) -> str:
    # As the seven cells were printed when they were a template included per row (its newline too).
    return (
        f'<td class="num">{counts.total}</td><td class="num ok-text">{counts.confirmed}</td>'
        f'<td class="num bad-text">{counts.flagged}</td><td class="num">{counts.in_progress + counts.returned}</td>'
        f'<td class="num">{counts.not_started}</td><td class="num bad-text">{counts.overdue}</td>'
        f'<td class="num">{counts.completion_percent}%</td>\n'
    )


def _url_with_id(view_name: str):
    """``reverse`` once per request: a function of the id that fills the address around it."""
    sentinel = 987654321
    before, after = reverse(view_name, args=[sentinel]).split(str(sentinel))
    return lambda pk: f"{before}{pk}{after}"


@register.simple_tag
def counts_cells(counts):
    """The seven count cells of one row: 人数, 已确认, 已报错, 核对中, 未开始, 逾期, 完成率."""
    return mark_safe(_cells(counts))


@register.simple_tag(takes_context=True)
def department_progress_rows(context):
    """The school dashboard's row per department, each linking to that department's dashboard."""
    url = f"{reverse('workspace:dashboard')}?campaign={_e(context['campaign'].pk)}&amp;department="
    return mark_safe(
        "".join(
            f'<tr><td><a href="{url}{_e(department.pk)}">{_e(department.name)}</a></td>{_cells(counts)}</tr>'
            for department, counts in context.get("rows") or ()
        )
    )


@register.simple_tag
def cohort_progress_rows(cohorts):
    """The school dashboard's row per cohort (— for students without one)."""
    return mark_safe(
        "".join(
            f"<tr><td>{_e(cohort) if cohort else '—'}</td>{_cells(counts)}</tr>" for cohort, counts in cohorts or ()
        )
    )


@register.simple_tag(takes_context=True)
def class_progress_rows(context):
    """The department dashboard's row per class (a class page link) or per department's students without one."""
    campaign = _e(context["campaign"].pk)
    class_url = _url_with_id("workspace:class_detail")
    out = []
    for class_group, counts in context.get("rows") or ():
        name = _e(class_group.name)
        if class_group.pk:
            name = f'<a href="{class_url(class_group.pk)}?campaign={campaign}">{name}</a>'
        out.append(f"\n      <tr><td>{name}</td><td>{_e(class_group.department.name)}</td>{_cells(counts)}</tr>\n    ")
    if not out:
        out.append(f'<tr><td colspan="9">{_e(gettext("暂无学生。"))}</td></tr>')
    return mark_safe("".join(out))


@register.simple_tag
def chart_bars(chart):
    """The chart's bars, each titled with its day, its finishes and the cumulative rate."""
    title = gettext("%(day)s：%(n)s 人，累计 %(rate)s%%")
    return mark_safe(
        "".join(
            f'<rect x="{bar["x"]}" y="{bar["y"]}" width="{bar["w"]}" height="{bar["h"]}" class="bar"><title>'
            + title % {"day": f"{bar['day']:%m-%d}", "n": bar["n"], "rate": bar["rate"]}
            + "</title></rect>"
            for bar in chart["bars"]
        )
    )


# ---------------------------------------------------------------------------
# The rest of the dashboards' parts, printed as their templates printed them (the same HTML, byte for byte):
# each ``{% include %}``, ``{% blocktranslate %}``, ``{% for %}`` row and ``{% translate %}`` cost more than the
# page's queries (docs/performance.md §6).  Message ids are the templates' own, so the catalogue still applies.
# ---------------------------------------------------------------------------

# Fixed texts, translated once per process and language (a gettext costs about as much as printing a row).
_FIXED = (
    gettext_noop("核对活动"),
    gettext_noop("查看"),
    gettext_noop("学生求助"),
    gettext_noop("："),
    gettext_noop("未解决 %(open)s（待处理 %(new)s，处理中 %(in_progress)s）"),
    gettext_noop("人数"),
    gettext_noop("已确认"),
    gettext_noop("已报错"),
    gettext_noop("核对中"),
    gettext_noop("未开始"),
    gettext_noop("逾期"),
    gettext_noop("完成率"),
    gettext_noop(
        "未完成中：曾完成、因数据更新或报错退回待重新核对 %(reopened)s 人，从未完成 %(never)s 人；"
        "不参加本次核对 %(excluded)s 人（不计入人数和查询率）。"
    ),
    gettext_noop("学生核对截止 %(students)s · 院系汇总截止 %(departments)s · 学籍科上报截止 %(registrar)s"),
    gettext_noop("查询率：%(percent)s%%"),
    gettext_noop("已完成核对 %(done)s / %(all)s 人（已确认或已报错）。"),
    gettext_noop("每日完成人数与累计查询率"),
    # As ``{% translate %}`` looks up a text with a %: doubled, then printed single.
    gettext_noop("柱：每日完成人数；线：累计查询率（0–100%%）"),
    gettext_noop("未确认"),
    gettext_noop("应核对 %(total)s，已完成 %(done)s，有报错 %(flagged)s，逾期 %(overdue)s，不参加 %(excluded)s"),
    gettext_noop("撤回原因"),
    gettext_noop("撤回"),
    gettext_noop("班级"),
    gettext_noop("完成率从低到高"),
    gettext_noop("未完成人数"),
    gettext_noop("报错人数"),
    gettext_noop("逾期人数"),
    gettext_noop("各院系"),
    gettext_noop("院系"),
    gettext_noop("全校"),
    gettext_noop("院系确认提交"),
    gettext_noop("状态"),
    gettext_noop("确认时的人数"),
    gettext_noop("备注"),
    gettext_noop("各年级"),
    gettext_noop("年级"),
    gettext_noop("合计"),
    gettext_noop("总计"),
    gettext_noop("缺少学历照片的学生（需参加图像采集）"),
    gettext_noop("各班进度"),
    gettext_noop("排序："),
    gettext_noop("备注："),
    gettext_noop(
        "已于 %(when)s 确认提交：应核对 %(total)s 人，已完成 %(done)s 人，有报错 %(flagged)s 人，"
        "逾期 %(overdue)s 人，不参加 %(excluded)s 人。"
    ),
    gettext_noop("确认提交%(name)s的核对结果"),
)
_COUNT_HEADS = ("人数", "已确认", "已报错", "核对中", "未开始", "逾期", "完成率")
_SORTS = (
    ("class", "班级"),
    ("completion", "完成率从低到高"),
    ("not_done", "未完成人数"),
    ("flagged", "报错人数"),
    ("overdue", "逾期人数"),
)


_fixed = fixed_texts({text: text for text in _FIXED})


@functools.cache
def _translated(language: str | None) -> dict:
    texts = dict(_fixed(language))
    texts["chart_caption"] = texts.pop("柱：每日完成人数；线：累计查询率（0–100%%）").replace("%%", "%")
    texts["counts_head"] = "".join(f'<th class="num">{_e(texts[name])}</th>' for name in _COUNT_HEADS) + "\n"
    return texts


def _texts() -> dict:
    """The fixed texts in the current language (and the count columns' headings, printed)."""
    return _translated(translation.get_language())


def _local(moment, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``{{ moment|date:"Y-m-d H:i" }}``: local time, empty for None."""
    return "" if moment is None else f"{timezone.localtime(moment):{fmt}}"


@register.simple_tag(takes_context=True)
def campaign_picker(context):
    """The campaign picker (a form that reloads the page with ``?campaign=``), a department kept if chosen."""
    T = _texts()
    campaign, department_id = context.get("campaign"), context.get("department_id")
    chosen = campaign.pk if campaign else None
    options = "".join(
        f'<option value="{_e(item.pk)}"{" selected" if item.pk == chosen else ""}>{_e(item.name)}</option>'
        for item in context.get("campaigns") or ()
    )
    department = f'<input type="hidden" name="department" value="{_e(department_id)}">' if department_id else ""
    return mark_safe(
        f'<form method="get" class="search picker">\n  <label for="campaign">{_e(T["核对活动"])}</label>\n'
        f'  <select id="campaign" name="campaign">{options}</select>\n  {department}\n'
        f'  <button type="submit">{_e(T["查看"])}</button>\n</form>\n'
    )


@register.simple_tag(takes_context=True)
def open_tickets(context):
    """The line of open tickets (a link to the queue for those who may open it)."""
    T = _texts()
    tickets, department_id = context["tickets"], context.get("department_id")
    label = _e(T["学生求助"])
    if "ticket.view" in context["can"]:
        query = f"?department={_e(department_id)}" if department_id else ""
        label = f'<a href="{reverse("workspace:ticket_queue")}{query}">{label}</a>'
    counts = T["未解决 %(open)s（待处理 %(new)s，处理中 %(in_progress)s）"] % {
        "open": _e(tickets["open"]),
        "new": _e(tickets["new"]),
        "in_progress": _e(tickets["in_progress"]),
    }
    return mark_safe(f'\n<p class="card tickets-summary">{label}{_e(T["："])}{counts}</p>\n')


@register.simple_tag
def counts_head():
    """The seven count columns' headings."""
    return mark_safe(_texts()["counts_head"])


def _breakdown(counts, T) -> str:
    text = T[
        "未完成中：曾完成、因数据更新或报错退回待重新核对 %(reopened)s 人，从未完成 %(never)s 人；"
        "不参加本次核对 %(excluded)s 人（不计入人数和查询率）。"
    ] % {"reopened": counts.reopened, "never": counts.never_finished, "excluded": counts.excluded}
    return f'<p class="hint counts-breakdown">{text}</p>\n'


@register.simple_tag
def counts_breakdown(counts):
    """Of those not done, how many had finished once; how many are excluded."""
    return mark_safe(_breakdown(counts, _texts()))


@register.simple_tag(takes_context=True)
def school_summary(context):
    """The school dashboard's first card: the completion rate, the deadlines and the daily chart."""
    T = _texts()
    campaign, total, chart = context["campaign"], context["total"], context.get("chart")
    deadlines = T["学生核对截止 %(students)s · 院系汇总截止 %(departments)s · 学籍科上报截止 %(registrar)s"] % {
        "students": _local(campaign.closes_at),
        "departments": _local(campaign.departments_deadline),
        "registrar": _local(campaign.registrar_deadline),
    }
    out = [
        '<section class="card">\n  <h2>',
        T["查询率：%(percent)s%%"] % {"percent": total.completion_percent},
        '</h2>\n  <p class="hint">',
        T["已完成核对 %(done)s / %(all)s 人（已确认或已报错）。"] % {"done": total.done, "all": total.total},
        "</p>\n  ",
        _breakdown(total, T),
        '\n  <p class="hint">',
        deadlines,
        "</p>\n  ",
    ]
    if chart:
        out += [
            f'\n  <figure class="chart">\n    <svg viewBox="0 0 {chart["width"]} {chart["height"]}" role="img" '
            f'aria-label="{_e(T["每日完成人数与累计查询率"])}">\n'
            f'      <line x1="{chart["left"]}" y1="{chart["base_y"]}" x2="{chart["width"]}" y2="{chart["base_y"]}" '
            'class="axis"/>\n'
            f'      <text x="2" y="{chart["top_y"] + 8}" class="tick">{chart["max_n"]}</text>\n'
            f'      <text x="2" y="{chart["base_y"]}" class="tick">0</text>\n      ',
            chart_bars(chart),
            f'\n      <polyline points="{_e(chart["line"])}" class="rate"/>\n'
            f'      <text x="{chart["left"]}" y="{chart["height"] - 6}" class="tick">{chart["first"]:%m-%d}</text>\n'
            f'      <text x="{chart["width"] - 40}" y="{chart["height"] - 6}" class="tick">{chart["last"]:%m-%d}</text>\n'
            f'    </svg>\n    <figcaption class="hint">{_e(T["chart_caption"])}'
            "</figcaption>\n  </figure>\n  ",
        ]
    out.append("\n</section>")
    return mark_safe("".join(out))


def _sign_off_rows(context, T) -> str:
    """The school dashboard's row per department: signed off (when, the counts then, the remark, a withdraw
    form for those who may) or not."""
    withdraw = _url_with_id("workspace:sign_off_withdraw") if "department.withdraw_sign_off" in context["can"] else None
    out = []
    for department, sign_off in context["sign_offs"]:
        out.append(f"<tr><td>{_e(department.name)}</td>\n      ")
        if not sign_off:
            out.append(f"<td>{_e(T['未确认'])}</td><td></td><td></td><td></td>\n    </tr>")
            continue
        counts = T["应核对 %(total)s，已完成 %(done)s，有报错 %(flagged)s，逾期 %(overdue)s，不参加 %(excluded)s"] % {
            "total": sign_off.total,
            "done": sign_off.finished,
            "flagged": sign_off.flagged,
            "overdue": sign_off.overdue,
            "excluded": sign_off.excluded,
        }
        form = ""
        if withdraw:
            reason = _e(T["撤回原因"])
            form = (
                f'<form method="post" action="{withdraw(sign_off.pk)}" class="inline">{_csrf_input(context)}'
                f'<input type="text" name="reason" required maxlength="1000" placeholder="{reason}" '
                f'aria-label="{reason}"><button type="submit">{_e(T["撤回"])}</button></form>'
            )
        out.append(
            f'<td>{_e(T["已确认"])} <span class="hint">{_local(sign_off.signed_at)}</span></td>\n'
            f"      <td>{counts}</td><td>{_e(sign_off.remark)}</td>\n      <td>{form}</td>\n      \n    </tr>"
        )
    return "".join(out)


@register.simple_tag(takes_context=True)
def school_tables(context):
    """The school dashboard's tables: by department (with the school's total), the departments' sign-offs
    (when there are rows) and by cohort."""
    T = _texts()
    head = T["counts_head"]
    out = [
        f'<section class="card">\n  <h2>{_e(T["各院系"])}</h2>\n  <div class="table-wrap"><table>\n'
        f"    <thead><tr><th>{_e(T['院系'])}</th>{head}</tr></thead>\n    <tbody>\n    ",
        department_progress_rows(context),
        f'\n    <tr class="total"><th>{_e(T["全校"])}</th>{_cells(context["total"])}</tr>\n'
        "    </tbody>\n  </table></div>\n</section>\n",
    ]
    if context.get("sign_offs"):
        columns = "".join(f"<th>{_e(T[name])}</th>" for name in ("院系", "状态", "确认时的人数", "备注"))
        out.append(
            f'\n<section class="card" id="sign-offs">\n  <h2>{_e(T["院系确认提交"])}</h2>\n'
            f'  <div class="table-wrap"><table>\n    <thead><tr>{columns}<th></th></tr></thead>\n'
            f"    <tbody>\n    {_sign_off_rows(context, T)}\n    </tbody>\n  </table></div>\n</section>\n"
        )
    out.append(
        f'\n<section class="card">\n  <h2>{_e(T["各年级"])}</h2>\n  <div class="table-wrap"><table>\n'
        f"    <thead><tr><th>{_e(T['年级'])}</th>{head}</tr></thead>\n"
        f"    <tbody>{cohort_progress_rows(context.get('cohorts'))}</tbody>\n  </table></div>\n</section>"
    )
    return mark_safe("".join(out))


@register.simple_tag(takes_context=True)
def per_department_rows(context):
    """The department dashboard's total per department."""
    return mark_safe(
        "".join(f"<tr><td>{_e(name)}</td>{_cells(counts)}</tr>" for name, counts in context["per_department"])
    )


@register.simple_tag(takes_context=True)
def sort_links(context):
    """The department dashboard's orders of the classes, the current one marked."""
    T = _texts()
    query = f"?campaign={_e(context['campaign'].pk)}"
    if context.get("department_id"):
        query += f"&amp;department={_e(context['department_id'])}"
    sort, current = context.get("sort"), ' aria-current="true"'
    return mark_safe(
        " ·\n    ".join(
            f'<a href="{query}&amp;sort={key}"{current if sort == key else ""}>{_e(T[label])}</a>'
            for key, label in _SORTS
        )
    )


@register.simple_tag(takes_context=True)
def department_totals(context):
    """The department dashboard's first table: each department's total and theirs together, then the breakdown."""
    T = _texts()
    return mark_safe(
        f'<section class="card">\n  <h2>{_e(T["合计"])}</h2>\n  <div class="table-wrap"><table>\n'
        f"    <thead><tr><th>{_e(T['院系'])}</th>{T['counts_head']}</tr></thead>\n    <tbody>\n    "
        f"{per_department_rows(context)}\n"
        f'    <tr class="total"><th>{_e(T["总计"])}</th>{_cells(context["total"])}</tr>\n'
        f"    </tbody>\n  </table></div>\n  {_breakdown(context['total'], T)}"
    )


@register.simple_tag(takes_context=True)
def department_classes(context):
    """The end of the totals card (the students missing a photo, for a campaign that collects them) and the
    card of classes: the orders and a row per class."""
    T = _texts()
    campaign, department_id = context["campaign"], context.get("department_id")
    photos = ""
    if campaign.kind_spec.collect_photo:
        department = f"&amp;department={_e(department_id)}" if department_id else ""
        photos = (
            f'<p><a href="{reverse("workspace:missing_photos")}?campaign={_e(campaign.pk)}{department}">'
            f"{_e(T['缺少学历照片的学生（需参加图像采集）'])}</a></p>"
        )
    return mark_safe(
        f'{photos}\n</section>\n<section class="card">\n  <h2>{_e(T["各班进度"])}</h2>\n'
        f'  <p class="sorts">{_e(T["排序："])}\n    {sort_links(context)}\n  </p>\n'
        f'  <div class="table-wrap"><table>\n    <thead><tr><th>{_e(T["班级"])}</th><th>{_e(T["院系"])}</th>'
        f"{T['counts_head']}</tr></thead>\n    <tbody>\n    {class_progress_rows(context)}\n    </tbody>\n"
        "  </table></div>\n</section>"
    )


@register.simple_tag(takes_context=True)
def department_sign_off_rows(context):
    """Per department: its sign-off (when, the counts then, the remark) or the form to sign off."""
    T = _texts()
    campaign, out = context["campaign"], []
    action = None
    for department, sign_off in context["sign_offs"]:
        name = _e(department.name)
        if sign_off:
            signed = T[
                "已于 %(when)s 确认提交：应核对 %(total)s 人，已完成 %(done)s 人，有报错 %(flagged)s 人，"
                "逾期 %(overdue)s 人，不参加 %(excluded)s 人。"
            ] % {
                "when": _local(sign_off.signed_at),
                "total": sign_off.total,
                "done": sign_off.finished,
                "flagged": sign_off.flagged,
                "overdue": sign_off.overdue,
                "excluded": sign_off.excluded,
            }
            remark = f" {_e(T['备注：'])}{_e(sign_off.remark)}" if sign_off.remark else ""
            out.append(f"\n    \n      <p>{name} {signed}{remark}</p>\n    \n  ")
            continue
        action = action or reverse("workspace:department_sign_off")
        out.append(
            f'\n    \n      <form method="post" action="{action}">{_csrf_input(context)}\n'
            f'        <input type="hidden" name="campaign" value="{_e(campaign.pk)}">'
            f'<input type="hidden" name="department" value="{_e(department.pk)}">\n'
            f"        <p><label>{name} {_e(T['备注：'])}"
            '<textarea name="remark" rows="2" maxlength="1000"></textarea></label></p>\n'
            f'        <button type="submit" class="primary">{T["确认提交%(name)s的核对结果"] % {"name": name}}</button>\n'
            "      </form>\n    \n  "
        )
    return mark_safe("".join(out))
