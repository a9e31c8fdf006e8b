from functools import partial

from auditlog.cid import set_cid
from auditlog.context import _set_extra_data, auditlog_value
from auditlog.middleware import AuditlogMiddleware as BaseAuditlogMiddleware
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from django.conf import settings
from django.core.signals import setting_changed
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.utils import translation

from students.network import client_ip


class PortalLanguageMiddleware:
    """Chinese unless the visitor chose another language with the switch.

    Django's LocaleMiddleware would follow the browser's Accept-Language; a
    registrar's portal stays in Chinese for everyone who has not asked
    otherwise (the choice lives in the language cookie set by set_language).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.available = {code for code, _name in settings.LANGUAGES}

    def __call__(self, request):
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        language = chosen if chosen in self.available else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        response.headers.setdefault("Vary", "Cookie")
        return response


# The dispatch id of the one receiver that gives log entries the request's actor and address.
_REQUEST_DUID = ("registrar_portal.middleware", "request")


class AuditlogMiddleware(BaseAuditlogMiddleware):
    """django-auditlog's middleware, recording the same client address as the access log and the sign-in lockout.

    auditlog connects a ``pre_save`` receiver for every request and disconnects it after (a lock and the
    signal's receiver cache cleared each time); here one receiver is connected once, and each request only
    sets (and then resets) the context it reads, under that receiver's id.  A ``set_actor`` inside a
    request works as before: its own receiver and id take over.
    """

    def __init__(self, get_response=None):
        super().__init__(get_response)
        from auditlog import get_logentry_model

        pre_save.connect(
            partial(_set_extra_data, signal_duid=_REQUEST_DUID),
            sender=get_logentry_model(),
            dispatch_uid=_REQUEST_DUID,
            weak=False,
        )

    @staticmethod
    def _get_remote_addr(request):
        return None if getattr(settings, "AUDITLOG_DISABLE_REMOTE_ADDR", False) else client_ip(request)

    def __call__(self, request):
        set_cid(request)
        token = auditlog_value.set({**self.get_extra_data(request), "signal_duid": _REQUEST_DUID})
        try:
            return self.get_response(request)
        finally:
            auditlog_value.reset(token)


class CSPMiddleware(BaseCSPMiddleware):
    """django-csp's middleware, with the policy built once per process.

    The policy is the settings' unless a view asked for another (``csp_update``, ``csp_replace``,
    ``csp_exempt``…) or a page used a nonce; django-csp built the same header again on every response.
    """

    def process_response(self, request, response):
        headers = _constant_headers()
        if (
            headers is None
            or response.status_code in _DEBUG_EXEMPT
            or getattr(request, "_csp_nonce", None) is not None
            or _has_csp_override(response)
        ):
            return super().process_response(request, response)
        for name, value in headers:
            if value and name not in response:
                response[name] = value
        # As django-csp: a nonce asked for after the header is written is an error.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response


# django-csp leaves these out with DEBUG on (its debug pages); the general path decides.
_DEBUG_EXEMPT = (404, 500)
_OVERRIDES = tuple(
    f"_csp_{kind}{suffix}" for kind in ("config", "update", "replace", "exempt") for suffix in ("", "_ro")
)


def _has_csp_override(response) -> bool:
    return any(getattr(response, name, None) is not None for name in _OVERRIDES)


_constant = {}


def _constant_headers():
    """The (header, value) pairs django-csp sets on a response without overrides, or None where a setting
    excludes paths (the prefixes then decide per request)."""
    if "headers" not in _constant:
        from csp.constants import HEADER, HEADER_REPORT_ONLY
        from csp.utils import build_policy

        excluded = any(
            (getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES")
            for name in ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY")
        )
        _constant["headers"] = (
            None if excluded else ((HEADER, build_policy()), (HEADER_REPORT_ONLY, build_policy(report_only=True)))
        )
    return _constant["headers"]


@receiver(setting_changed)
def _forget_csp_headers(setting, **kwargs):
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _constant.clear()
