"""Session lifetime, the second factor for staff, caching of personal data, and ending sessions of disabled accounts."""

import time
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.auth.views import redirect_to_login
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

STARTED = "_auth_started"
SEEN = "_last_seen"


def is_staff_account(user) -> bool:
    """Registrar staff, administrators (superusers whatever their role) and department secretaries."""
    from students.permissions import has_capability

    return has_capability(user, "workspace.use")


def _is_staff_request(request, user) -> bool:
    """``is_staff_account`` decided once per request for both middlewares below (kept with its user: a sign-in
    or sign-out inside the request changes it)."""
    known = getattr(request, "_staff_account", None)
    if known is None or known[0] is not user:
        known = request._staff_account = (user, is_staff_account(user))
    return known[1]


def _limits(user, request=None) -> tuple[int, int]:
    """(idle, absolute) seconds: staff sessions are shorter than students'."""
    if not (is_staff_account(user) if request is None else _is_staff_request(request, user)):
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
            idle, absolute = _limits(user, request)
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


def second_factor_required(user) -> bool:
    """Registrar staff must enrol a TOTP device when REQUIRE_2FA_FOR_REGISTRAR is on."""
    from students.permissions import has_capability

    return bool(settings.REQUIRE_2FA_FOR_REGISTRAR) and has_capability(user, "account.second_factor")


class SecondFactorMiddleware:
    """The one gate of the second factor (TOTP, django-otp); after OTPMiddleware and SessionPolicyMiddleware.

    A staff account with a confirmed device reaches no page until this session has
    verified a token (→ ``otp_verify``); registrar staff without a device are sent
    to ``otp_setup`` when ``REQUIRE_2FA_FOR_REGISTRAR`` is on.  Every page counts,
    the admin and file downloads included; only signing out, the language switch,
    the health check and static files stay open.  Students never meet it.
    """

    OPEN = ("logout", "cas_ng_logout", "set_language", "health")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and _is_staff_request(request, user):
            target = self._required_step(request, user)
            if target is not None:
                return self._send_to(request, target)
        return self.get_response(request)

    def _required_step(self, request, user) -> str | None:
        from django_otp import user_has_device

        is_verified = getattr(user, "is_verified", None)
        if is_verified is not None and is_verified():
            return None
        path = request.path
        static = "/" + settings.STATIC_URL.lstrip("/")
        if path.startswith(static) or path == "/favicon.ico" or path in {reverse(name) for name in self.OPEN}:
            return None
        if user_has_device(user, confirmed=True):
            step = "otp_verify"
        elif second_factor_required(user):
            step = "otp_setup"
        else:
            return None
        return None if path == reverse(step) else step

    @staticmethod
    def _send_to(request, step: str):
        url = reverse(step)
        if request.method == "GET":
            url += "?next=" + quote(request.get_full_path(), safe="/")
        if request.headers.get("HX-Request"):
            # htmx would follow a redirect inside the fragment; make the whole page go instead.
            response = HttpResponse(status=204)
            response["HX-Redirect"] = url
            return response
        return HttpResponseRedirect(url)


def rotate_session(request) -> None:
    """A new session key for the same session (after a privilege step such as the second factor)."""
    from django.middleware.csrf import rotate_token

    from students.models import UserSession

    old = request.session.session_key
    request.session.cycle_key()
    rotate_token(request)
    if old:
        UserSession.objects.filter(session_key=old).update(session_key=request.session.session_key)


class NoStoreMiddleware:
    """Pages shown to a signed-in user carry personal data: browsers and proxies must not keep them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        static = "/" + settings.STATIC_URL.lstrip("/")
        # A photo may stay in the browser's private cache for a while (students.photos.views).
        private_ok = getattr(response, "private_cache_ok", False)
        if user is not None and user.is_authenticated and not request.path.startswith(static) and not private_ok:
            patch_cache_control(response, no_store=True, private=True)
        return response


@receiver(user_logged_in)
def _session_started(sender, request, user, **kwargs):
    from students.models import UserSession

    if request is None or not hasattr(request, "session"):
        return
    # A sign-in always rotates the session key.  Django's login() has already done so unless the same user
    # signs in again: rotate here only when the key is still the one the browser sent (cycling it twice cost
    # a new key's queries again).  A key made in this request was never seen by the browser.
    old = request.session.session_key
    if old is None or old == request.COOKIES.get(settings.SESSION_COOKIE_NAME):
        request.session.cycle_key()
        if old:
            UserSession.objects.filter(session_key=old).delete()
    now = time.time()
    request.session[STARTED] = now
    request.session[SEEN] = now
    _track_session(request.session.session_key, user)


def _track_session(session_key: str, user) -> None:
    """Records the session as the user's (students.UserSession) in one statement, outside a transaction of its
    own: the key is new, but a stale row of a purged session could in theory hold it."""
    from django.db import connections, router

    from students.models import UserSession

    connection = connections[router.db_for_write(UserSession)]
    table = connection.ops.quote_name(UserSession._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} ("user_id", "session_key", "created_at") VALUES (%s, %s, %s) '
            'ON CONFLICT ("session_key") DO UPDATE SET "user_id" = excluded."user_id", '
            '"created_at" = excluded."created_at"',
            [user.pk, session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
        )


@receiver(user_logged_out)
def _session_ended(sender, request, user, **kwargs):
    from students.models import UserSession

    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        UserSession.objects.filter(session_key=key).delete()


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
