"""The dashboards' repeated markup, printed in Python: ``{% counts_cells %}``, ``{% class_progress_rows %}``,
``{% department_progress_rows %}`` and ``{% chart_bars %}``.

Each row of counts was an ``{% include %}`` of seven cells, and each bar of the chart a
``{% blocktranslate %}`` with a date filter: together most of the school page's rendering time
(docs/performance.md §6).  Here each is one string format, printing what the template printed
(numbers as ``str``, as ``{{ n }}`` prints them without thousand separators; values escaped as
the template engine escapes them), so the pages are unchanged.
"""

from django import template
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext

from registrar_portal.html import escape

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
