"""System checks: a wrong review chain is refused when the portal starts, not at the first flag."""

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register()
def review_chain_check(app_configs, **kwargs):
    from .review_chain import chain

    try:
        chain()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="docs/roles.md", id="verification.E001")]
    return []
