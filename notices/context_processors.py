from django.utils.functional import SimpleLazyObject

from . import selectors


def unread(request):
    """The unread-message count for the badge in the navigation; queried only when a page shows it."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {"unread_messages": 0}
    # The navigation counts a student's in the same query as their 班长 check (registrar_portal/navigation.py).
    return {"unread_messages": SimpleLazyObject(lambda: _unread_count(request, user))}


def _unread_count(request, user) -> int:
    count = getattr(request, "unread_messages_count", None)
    return selectors.messages_unread_count(user=user) if count is None else count
