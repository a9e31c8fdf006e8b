"""The portal's navigation: links grouped by task, only those the role can open, the current one marked.

Staff see five groups (进度 / 审核与更正 / 学生与名单 / 通知与提醒 / 系统) rendered as <details> menus by
templates/base.html; students see a short flat row that starts with 我的核对.  Pages that are not in the
menu themselves (a class, a student's record, a reminder plan) mark the group they belong to.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from students.context_processors import request_capabilities
from students.permissions import is_counsellor

# The menu's addresses take no arguments and no language prefix: reversed once per URLconf and script prefix
# instead of on every page (about 20 reverse() a page for registrar staff).
_REVERSED: dict[tuple, str] = {}


def _reverse(url_name: str) -> str:
    key = (get_urlconf() or settings.ROOT_URLCONF, get_script_prefix(), url_name)
    if key not in _REVERSED:
        _REVERSED[key] = reverse(url_name)
    return _REVERSED[key]


class _FixedURLs:
    """``{{ nav_url.home }}`` in base.html: the top bar's fixed addresses, reversed once like the menu's."""

    NAMES = {
        "home": "home",
        "messages": "notices:message_list",
        "help": "notices:help_index",
        "logout": "logout",
        "set_language": "set_language",
    }

    def __getitem__(self, key: str) -> str:
        return _reverse(self.NAMES[key])


NAV_URL = _FixedURLs()


@dataclass
class Link:
    label: str
    url_name: str
    current: bool = False

    @property
    def url(self) -> str:
        return _reverse(self.url_name)

    def html(self) -> str:
        current = ' aria-current="page"' if self.current else ""
        return f'<a href="{escape(self.url)}"{current}>{escape(self.label)}</a>'


@dataclass
class Group:
    key: str
    label: str
    links: list[Link] = field(default_factory=list)
    current: bool = False


# (group key, group label, [(label, URL name, capability that opens the page)]): the capability is the one
# the view itself requires (students.permissions.CAPABILITIES), so a link shows exactly when it would open.
STAFF_MENU = [
    (
        "progress",
        _("进度"),
        [
            (pgettext_lazy("navigation", "全校"), "workspace:school", "school.view"),
            (pgettext_lazy("navigation", "院系"), "workspace:dashboard", "workspace.use"),
            (pgettext_lazy("navigation", "核对活动"), "verification:campaign_list", "campaign.manage"),
        ],
    ),
    (
        "review",
        _("审核与更正"),
        [
            (_("审核"), "workspace:review_queue", "flag.review"),
            (_("更正"), "workspace:correction_queue", "flag.correct"),
            (_("数据问题"), "workspace:findings", "school.view"),
            (_("学生求助"), "workspace:ticket_queue", "ticket.view"),
        ],
    ),
    (
        "students",
        _("学生与名单"),
        [
            (pgettext_lazy("navigation", "学生"), "students:student_list", "student.view"),
            (_("导入名单"), "students:roster_upload", "roster.import"),
            (_("名单对照"), "workspace:source_list", "roster.compare"),
            (pgettext_lazy("navigation", "导出"), "exports:export_list", "workspace.use"),
        ],
    ),
    (
        "notices",
        _("通知与提醒"),
        [
            (pgettext_lazy("navigation", "通知"), "notices:notice_list", "notice.read"),
            (_("日报"), "notices:digest_list", "digest.view"),
            (_("群机器人"), "notices:channel_list", "reminder.manage"),
            (_("提醒渠道"), "notices:reminder_channels", "reminder.channels"),
        ],
    ),
    (
        "system",
        _("系统"),
        [
            (_("访问日志"), "students:access_log", "export.access_log"),
            (_("接口客户端"), "workspace:api_clients", "api.manage_clients"),
            (_("Webhook"), "notices:webhook_list", "api.manage_clients"),
            (_("两步验证"), "otp_setup", "workspace.use"),
        ],
    ),
]

# A counsellor's workspace is their classes, not a department: its link says so.
COUNSELLOR_LABELS = {"workspace:dashboard": pgettext_lazy("navigation", "我的班级")}

# Pages reached from a menu link, by the group they belong to (view names; a trailing "_" or ":" is a prefix).
SECTION_OF = {
    "progress": ["workspace:school", "workspace:dashboard", "workspace:class_detail", "verification:campaign_"],
    "review": ["workspace:review_queue", "workspace:correction_queue", "workspace:findings", "workspace:ticket_"],
    "students": ["students:", "workspace:student_record", "workspace:proxy_flag", "workspace:source_", "exports:"],
    "notices": ["notices:notice_", "notices:attachment_", "notices:reminder_", "notices:delivery_", "notices:digest_"]
    + ["notices:channel_"],
    "system": ["otp_", "admin:", "workspace:api_client"],
}


def _section(view_name: str) -> str | None:
    for key, prefixes in SECTION_OF.items():
        if any(view_name == p or (p.endswith(("_", ":")) and view_name.startswith(p)) for p in prefixes):
            return key
    return None


def _staff_groups(user, can) -> list[Group]:
    labels = COUNSELLOR_LABELS if is_counsellor(user) else {}
    groups = [
        Group(
            key,
            label,
            [Link(labels.get(url_name, text), url_name) for text, url_name, name in links if name in can],
        )
        for key, label, links in STAFF_MENU
    ]
    if user.is_superuser:
        groups[-1].links.append(Link(_("管理后台"), "admin:index"))
    return groups


def _monitor_and_unread(request, user) -> bool:
    """A student's ``class.monitor`` (students.permissions.can_monitor_class) and unread-message count in
    one round trip, as plain SQL (the ORM's compiling of the two queries cost more CPU than running them).
    The count is kept on the request for the badge."""
    from notices.models import Message
    from students.models import ClassGroup

    # A page that already asked, in its own query, leaves the answers here (the student's checklist).
    known = getattr(request, "navigation_answers", None)
    if known is not None:
        monitor, request.unread_messages_count = known
        return bool(monitor) and user.is_active
    monitors, messages = ClassGroup.monitors.through._meta.db_table, Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT EXISTS (SELECT 1 FROM "{monitors}" WHERE "user_id" = %s), '
            f'(SELECT COUNT(*) FROM "{messages}" WHERE "user_id" = %s AND "read_at" IS NULL)',
            [user.pk, user.pk],
        )
        monitor, request.unread_messages_count = cursor.fetchone()
    return bool(monitor) and user.is_active


def navigation(request):
    """Context processor: ``nav_groups`` for staff, ``nav_links`` (flat) for students."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {"nav_groups": [], "nav_links": [], "nav_url": NAV_URL}
    match = getattr(request, "resolver_match", None)
    view_name = match.view_name if match else ""
    # The admissions office has no workspace but a menu of its own pages (更正, 学生).
    can = request_capabilities(request)
    if "workspace.use" in can or "flag.correct" in can:
        groups, links = _staff_groups(user, can), []
    else:
        groups = []
        # By role, not checklist.answer_own: that capability reads the student record, a query on every page.
        links = [Link(_("我的核对"), "verification:my_checks")] if user.role == user.Role.STUDENT else []
        # A class monitor (班长/学习委员) follows the class's progress; one query, for students only, that
        # also counts the unread messages for the badge (notices.context_processors.unread).
        if links and _monitor_and_unread(request, user):
            links.append(Link(_("班级进度"), "verification:class_progress"))
        links.append(Link(pgettext_lazy("navigation", "通知"), "notices:notice_list"))
        if user.is_superuser:
            links.append(Link(_("管理后台"), "admin:index"))
    for group in groups:
        for link in group.links:
            link.current = link.url_name == view_name
        group.current = any(link.current for link in group.links)
    if not any(group.current for group in groups):
        section = _section(view_name)
        for group in groups:
            group.current = group.key == section
    for link in links:
        link.current = link.url_name == view_name or (
            link.url_name == "verification:my_checks"
            and view_name.startswith("verification:")
            and view_name != "verification:class_progress"
        )
    return {"nav_groups": groups, "nav_links": links, "nav_html": _MenuHTML(groups, links), "nav_url": NAV_URL}


class _MenuHTML:
    """``{{ nav_html }}``: built when a page prints it (pages without base.html never do)."""

    def __init__(self, groups, links):
        self.groups, self.links = groups, links

    def __html__(self) -> str:
        return _html(self.groups, self.links)

    __str__ = __html__


def _html(groups: list[Group], links: list[Link]) -> str:
    """The menu as templates/base.html printed it with two nested loops, built with string formats: the
    template engine's loops were most of the cost of base.html.  Same escaping as autoescape."""
    menus = []
    for group in groups:
        if group.links:
            current, summary = (" current", ' aria-current="true"') if group.current else ("", "")
            menus.append(
                f'<details class="nav-group{current}" name="nav">\n'
                f"          <summary{summary}>{escape(group.label)}</summary>\n"
                f'          <div class="nav-menu">{"".join(link.html() for link in group.links)}</div>\n'
                "        </details>"
            )
    return mark_safe("".join(link.html() for link in links) + "\n        " + "".join(menus))
