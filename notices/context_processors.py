from django.utils.functional import SimpleLazyObject

from . import selectors


def unread(request):
    """The unread-message count for the badge in the navigation; queried only when a page shows it."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {"unread_messages": 0}
    return {"unread_messages": SimpleLazyObject(lambda: selectors.messages_unread_count(user=user))}
