"""The personal-information access log, with the filters the access-log page shows (dates included)."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from students.filters import AccessLogFilter
from students.models import AccessEvent

from .base import Exporter, choice_labels, fetched_rows, number, text, timestamp
from .registry import register


@register
class AccessLogExport(Exporter):
    key = "access-log"
    label = gettext_lazy("个人信息访问日志")
    capability = "export.access_log"
    form_class = AccessLogFilter
    sheet_title = gettext_lazy("访问日志")
    landscape = True
    columns = [
        timestamp(gettext_lazy("时间"), 19),
        text(gettext_lazy("账号"), 14),
        text(gettext_lazy("姓名"), 10),
        text(gettext_lazy("操作"), 16),
        text(gettext_lazy("学号"), 14),
        text(gettext_lazy("对象"), 24),
        text(gettext_lazy("说明"), 30),
        number(gettext_lazy("行数"), 8),
        text(gettext_lazy("来源地址"), 16),
    ]

    def _filters(self, params) -> list[str]:
        """The filters in words: the file says what it holds."""
        parts = []
        since, until = params.get("since"), params.get("until")
        if since or until:
            parts.append(
                _("%(since)s至%(until)s")
                % {"since": f"{since:%Y%m%d}" if since else "", "until": f"{until:%Y%m%d}" if until else ""}
            )
        if params.get("action"):
            parts.append(str(AccessEvent.Action(params["action"]).label))
        for key in ("username", "student_number"):
            if params.get(key):
                parts.append(params[key].strip())
        return parts

    def title(self, user, params):
        return " · ".join([str(self.label), *self._filters(params)])

    def scope_label(self, user, params):
        return " · ".join([_("访问日志"), *self._filters(params)])

    def filename_parts(self, user, params):
        return [_("访问日志"), *self._filters(params)]

    def _events(self, params):
        return AccessLogFilter.events_of(params)

    def estimate(self, user, params):
        return self._events(params).count()

    def rows(self, user, params):
        actions = choice_labels(AccessEvent.Action.choices)
        rows = self._events(params).values_list(
            "at", "user__username", "user__first_name", "action", "student__student_number", "target", "detail",
            "rows", "ip_address",
        )  # fmt: skip
        for at, username, name, action, student_number, target, detail, count, ip in fetched_rows(rows):
            yield [at, username, name, actions.get(action, action), student_number, target, detail, count, ip]
