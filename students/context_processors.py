from django.conf import settings

from . import permissions


def portal(request):
    user = getattr(request, "user", None)
    return {
        "school_name": settings.SCHOOL_NAME,
        "cas_enabled": bool(settings.CAS_SERVER_URL),
        "is_registrar": permissions.is_registrar(user),
        "is_secretary": permissions.is_secretary(user),
        # What the user may do, for links and buttons: {% if "notice.edit" in can %}.
        "can": request_capabilities(request),
    }


def request_capabilities(request) -> permissions.UserCapabilities:
    """The user's capabilities, each decided once per request: shared by ``can`` and the navigation."""
    if not hasattr(request, "_capabilities"):
        request._capabilities = permissions.UserCapabilities(getattr(request, "user", None))
    return request._capabilities
