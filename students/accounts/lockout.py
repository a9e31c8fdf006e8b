"""Sign-in lockout: django-axes plus two caps (docs/deploy.md "Sign-in lockout").

Password sign-in, the claim sign-in (学号 + 姓名 + last six of the ID number) and the one-time-password
step all report failures through ``user_login_failed``; this handler counts them three ways:

1. username + address (axes itself, AXES_LOCKOUT_PARAMETERS): AXES_FAILURE_LIMIT failures lock that
   username from that address for the cool-off.  Other addresses are unaffected, so nobody can lock
   someone else out by guessing from their own address.
2. address: SIGNIN_ADDRESS_FAILURE_LIMIT failures from one address across all usernames within the
   cool-off lock that address (a guesser walking the sequential 学号).
3. username: SIGNIN_USERNAME_FAILURE_LIMIT failures for one username across all addresses within
   SIGNIN_USERNAME_WINDOW_HOURS lock that username from every address it has never signed in from (a
   distributed guesser of the claim secret); registrar staff see an entry in the access log.
"""

import datetime

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessFailureLog, AccessLog
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import AccessEvent, Student

ADDRESS = "address"
USERNAME = "username"
# An address this username signed in from successfully within this time is the owner's, not a guesser's.
KNOWN_ADDRESS_DAYS = 30


def _failures_from_address(ip: str, now) -> int:
    since = now - (get_cool_off() or datetime.timedelta(hours=1))
    return AccessFailureLog.objects.filter(ip_address=ip, attempt_time__gte=since).count()


def _failures_for_username(username: str, now) -> int:
    since = now - datetime.timedelta(hours=settings.SIGNIN_USERNAME_WINDOW_HOURS)
    return AccessFailureLog.objects.filter(username=username, attempt_time__gte=since).count()


def _known_address(username: str, ip: str | None, now) -> bool:
    since = now - datetime.timedelta(days=KNOWN_ADDRESS_DAYS)
    return bool(ip) and AccessLog.objects.filter(username=username, ip_address=ip, attempt_time__gte=since).exists()


def cap_reached(*, username: str | None, ip: str | None) -> str | None:
    """Which cap (ADDRESS or USERNAME) refuses this sign-in, or ``None``."""
    now = timezone.now()
    if ip and _failures_from_address(ip, now) >= settings.SIGNIN_ADDRESS_FAILURE_LIMIT:
        return ADDRESS
    if (
        username
        and _failures_for_username(username, now) >= settings.SIGNIN_USERNAME_FAILURE_LIMIT
        and not _known_address(username, ip, now)
    ):
        return USERNAME
    return None


def _tell_the_registrar(*, username: str, ip: str | None, now) -> None:
    """Once per window: an access-log entry registrar staff can filter for (多地址登录失败，账号暂停登录)."""
    since = now - datetime.timedelta(hours=settings.SIGNIN_USERNAME_WINDOW_HOURS)
    if AccessEvent.objects.filter(action=AccessEvent.Action.SIGNIN_LOCKOUT, target=username, at__gte=since).exists():
        return
    failures = AccessFailureLog.objects.filter(username=username, attempt_time__gte=since)
    addresses = failures.values("ip_address").distinct().count()
    AccessEvent.objects.create(
        action=AccessEvent.Action.SIGNIN_LOCKOUT,
        student=Student.objects.filter(student_number=username).first(),
        target=username,
        detail=_(
            "%(hours)s 小时内从 %(addresses)s 个地址登录失败 %(failures)s 次；"
            "该账号在未曾成功登录过的地址上暂停登录，直至失败记录过期。"
        )
        % {"hours": f"{settings.SIGNIN_USERNAME_WINDOW_HOURS:g}", "addresses": addresses, "failures": failures.count()},
        ip_address=ip,
    )


class LockoutHandler(AxesDatabaseHandler):
    def is_locked(self, request, credentials=None) -> bool:
        if super().is_locked(request, credentials):
            return True
        reason = cap_reached(username=get_client_username(request, credentials), ip=request.axes_ip_address)
        if reason:
            request.signin_lock = reason
        return reason is not None

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        locked_before = getattr(request, "axes_locked_out", False)
        super().user_login_failed(sender, credentials, request=request, **kwargs)
        if request is None or locked_before:
            return  # not recorded (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False)
        now = timezone.now()
        AccessFailureLog.objects.filter(
            attempt_time__lt=now - datetime.timedelta(days=settings.SIGNIN_FAILURE_LOG_DAYS)
        ).delete()
        username = get_client_username(request, credentials)
        if username and _failures_for_username(username, now) >= settings.SIGNIN_USERNAME_FAILURE_LIMIT:
            _tell_the_registrar(username=username, ip=request.axes_ip_address, now=now)
        if not request.axes_locked_out:
            reason = cap_reached(username=username, ip=request.axes_ip_address)
            if reason:
                request.signin_lock = reason
                request.axes_locked_out = True
                request.axes_credentials = credentials
