"""``{% export_button "key" form=filter_form label=... %}``: an export button read from the registry.

The button posts the export's identifier and its parameters: those of the
page's bound filter form (so the file holds what the page shows), or the
keyword arguments given (``campaign=campaign.pk``).  Only the exporter's own
parameters are posted, and no button shows for a user without the
exporter's capability or when the page's filters could not be read.
"""

from django import template

from verification.exports import registry

register = template.Library()


@register.inclusion_tag("exports/partials/export_button.html", takes_context=True)
def export_button(context, key, *, form=None, label="", **params):
    exporter = registry.get(key)
    if exporter is None:
        raise template.TemplateSyntaxError(f"no export named {key!r}")
    request = context.get("request")
    if request is None or not registry.allowed(request.user, exporter):
        return {"show": False}
    if form is not None:
        if not (form.is_bound and form.is_valid()):
            return {"show": False}
        params = exporter.stored_params(form.cleaned_data)
    names = exporter.form_class.base_fields
    inputs = []
    for name, value in params.items():
        if name not in names or value in (None, ""):
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            inputs.append((name, item))
    return {
        "show": True,
        "key": key,
        "label": label or exporter.label,
        "inputs": inputs,
        "csrf_token": context.get("csrf_token"),
    }
