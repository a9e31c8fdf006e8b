"""Session lifetime, caching of personal data, and ending sessions of disabled accounts."""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils.cache import patch_cache_control
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

STARTED = "_auth_started"
SEEN = "_last_seen"


def _limits(user) -> tuple[int, int]:
    """(idle, absolute) seconds: staff sessions are shorter than students'."""
    if user.role == user.Role.STUDENT:
        return settings.SESSION_IDLE_SECONDS_STUDENT, settings.SESSION_MAX_SECONDS_STUDENT
    return settings.SESSION_IDLE_SECONDS_STAFF, settings.SESSION_MAX_SECONDS_STAFF


class SessionPolicyMiddleware:
    """Ends a session after inactivity or after its absolute lifetime, whichever comes first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            idle, absolute = _limits(user)
            started = request.session.get(STARTED, now)
            seen = request.session.get(SEEN, now)
            if now - seen > idle or now - started > absolute:
                logout(request)
                messages.info(request, _("长时间未操作或登录时间过长，请重新登录。"))
                return redirect_to_login(request.get_full_path())
            request.session.setdefault(STARTED, now)
            # Write the session at most once a minute, not on every request.
            if now - seen > 60 or SEEN not in request.session:
                request.session[SEEN] = now
        return self.get_response(request)


class NoStoreMiddleware:
    """Pages shown to a signed-in user carry personal data: browsers and proxies must not keep them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        static = "/" + settings.STATIC_URL.lstrip("/")
        if user is not None and user.is_authenticated and not request.path.startswith(static):
            patch_cache_control(response, no_store=True, private=True)
        return response


@receiver(user_logged_in)
def _session_started(sender, request, user, **kwargs):
    from students.models import UserSession

    if request is None or not hasattr(request, "session"):
        return
    now = time.time()
    request.session[STARTED] = now
    request.session[SEEN] = now
    if not request.session.session_key:
        request.session.save()
    UserSession.objects.update_or_create(session_key=request.session.session_key, defaults={"user": user})


def end_sessions(user) -> int:
    """Delete every session of the user (on any session backend)."""
    from students.models import UserSession

    store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    keys = list(UserSession.objects.filter(user=user).values_list("session_key", flat=True))
    for key in keys:
        store(session_key=key).delete()
    UserSession.objects.filter(user=user).delete()
    return len(keys)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def _disabled_account_signs_out(sender, instance, **kwargs):
    if not instance.is_active:
        end_sessions(instance)
