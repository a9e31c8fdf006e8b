from django import template

from notices import selectors
from notices.services import request_key_new

register = template.Library()


@register.simple_tag
def request_key():
    """A one-time key for a form, so that submitting it twice acts once."""
    return request_key_new()


@register.inclusion_tag("notices/partials/read_rates.html", takes_context=True)
def notice_read_rates(context, campaign, group, departments=None):
    """The dashboards' card: the campaign's latest notice and who has read it, per class or department.

    ``departments`` narrows the rows to those the dashboard shows (a secretary's chosen department).
    """
    notice, rates = selectors.latest_notice_read_rates(campaign=campaign, viewer=context["request"].user, group=group)
    if departments is not None and rates:
        names = set(departments.values_list("name", flat=True))
        rates = [row for row in rates if row["department"] in names]
    return {"notice": notice, "read_rates": rates, "group": group}


@register.inclusion_tag("notices/partials/send_estimate.html")
def send_estimate(campaign, class_group=None):
    """How a reminder to the unfinished students (of a class) would go out: channels, SMS billed, unreachable."""
    return {"estimate": selectors.send_estimate(campaign=campaign, class_group=class_group)}
