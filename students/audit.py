"""Writing the access log (students.models.AccessEvent)."""

from .models import AccessEvent
from .network import client_ip

__all__ = ["access_log", "client_ip"]


def access_log(request, action: str, *, student=None, target: str = "", detail: str = "", rows=None) -> AccessEvent:
    user = request.user if request.user.is_authenticated else None
    return AccessEvent.objects.create(
        user=user,
        action=action,
        student=student,
        target=target[:200],
        detail=detail[:500],
        rows=rows,
        ip_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
    )
