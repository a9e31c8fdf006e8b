"""Signing in from the campus app: WeCom OAuth (网页授权 in the app, 扫码登录 on a computer) and DingTalk (web OAuth).

The school's WeCom / DingTalk app is the one reminders are sent from (``ChannelConfig``, the 提醒渠道 page):
its credentials switch sign-in on, whether or not the channel is used for reminders.  The platform's userid
maps to a roll record through the same attribute messages are addressed by (``userid_field``, the 学号 by
default); an unknown userid is refused, like CAS: sign-in never creates a person.  The OAuth ``state`` is
bound to the browser's session, so a code obtained by someone else cannot be replayed into it.
"""

import dataclasses
import logging
import secrets
import time

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.backends import ModelBackend
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache

from students import normalize
from students.accounts.services import account_for_student
from students.models import Student, User

from . import channels
from .providers import dingtalk, wecom
from .providers.http import ProviderError

logger = logging.getLogger(__name__)

BACKEND = "notices.signin.CampusAppBackend"
STATE_KEY = "campus_signin"
STATE_SECONDS = 10 * 60


@dataclasses.dataclass(frozen=True)
class Platform:
    name: str
    label: str
    channel: type

    def app(self):
        """The configured channel of this platform, or ``None`` when the school has not set it up."""
        channel = self.channel()
        config = channel.config
        if not (config and config.secret and all(str(channel.option(k, "")).strip() for k in channel.required)):
            return None
        return channel


PLATFORMS = {
    "wecom": Platform("wecom", gettext_lazy("企业微信登录"), channels.WecomChannel),
    "dingtalk": Platform("dingtalk", gettext_lazy("钉钉登录"), channels.DingtalkChannel),
}


def available() -> list[Platform]:
    """The platforms whose sign-in button the sign-in page shows."""
    return [platform for platform in PLATFORMS.values() if platform.app() is not None]


def _wecom_config(channel) -> wecom.Config:
    return wecom.Config(
        corp_id=channel.option("corp_id"),
        agent_id=channel.agent_id(),
        secret=channel.config.secret,
        api=channel.option("api") or wecom.API,
    )


def _dingtalk_config(channel) -> dingtalk.Config:
    return dingtalk.Config(
        app_key=channel.option("app_key"),
        app_secret=channel.config.secret,
        agent_id=channel.agent_id(),
        api=channel.option("api") or dingtalk.API,
        new_api=channel.option("new_api") or dingtalk.NEW_API,
    )


def student_for_userid(channel, userid: str) -> Student | None:
    """The roll record a platform userid names (by ``userid_field``), or ``None`` when none or several do."""
    userid = (userid or "").strip()
    if not userid:
        return None
    field = channel.userid_field
    value = normalize.normalise_identifier(userid) if field == "student_number" else userid
    matches = list(Student.objects.filter(**{field: value}).select_related("user")[:2])
    return matches[0] if len(matches) == 1 else None


class CampusAppBackend(ModelBackend):
    """Signs in the student a campus-app userid maps to (see ``student_for_userid``)."""

    def authenticate(self, request, campus_platform=None, campus_userid=None, **kwargs):
        platform = PLATFORMS.get(campus_platform or "")
        channel = platform.app() if platform else None
        if channel is None or not campus_userid:
            return None
        student = student_for_userid(channel, campus_userid)
        user = account_for_student(student) if student else None
        return (
            user if user is not None and user.role == User.Role.STUDENT and self.user_can_authenticate(user) else None
        )


def _next_url(request, candidate: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


def _callback_url(name: str) -> str:
    # The address registered with the platform as the app's trusted domain, also behind a proxy.
    return settings.PORTAL_URL.rstrip("/") + reverse("notices:campus_signin_callback", args=[name])


def _in_app(request, name: str) -> bool:
    agent = request.headers.get("User-Agent", "").lower()
    return ("wxwork" in agent) if name == "wecom" else ("dingtalk" in agent)


def _refuse(request, message: str, *, status: int):
    return render(request, "notices/campus_signin_refused.html", {"message": message}, status=status)


@never_cache
def start(request, platform):
    """Send the browser to the platform: in the app its OAuth page, on a computer the QR code (``?qr=1``/``0``)."""
    if platform not in PLATFORMS:
        raise Http404
    channel = PLATFORMS[platform].app()
    if channel is None:
        raise Http404
    state = secrets.token_urlsafe(24)
    request.session[STATE_KEY] = {
        "state": state,
        "platform": platform,
        "next": _next_url(request, request.GET.get("next", "")),
        "at": time.time(),
    }
    redirect_uri = _callback_url(platform)
    try:
        if platform == "wecom":
            qr = request.GET.get("qr", "0" if _in_app(request, platform) else "1") == "1"
            url = wecom.authorize_url(_wecom_config(channel), redirect_uri, state, qr=qr)
        else:
            url = dingtalk.authorize_url(_dingtalk_config(channel), redirect_uri, state)
    except Exception:  # an AgentId that is not a number: the configuration is wrong
        logger.exception("campus sign-in %s misconfigured", platform)
        return _refuse(request, _("学校的登录设置有误，请用学号和密码登录，并告知学籍科。"), status=503)
    return HttpResponseRedirect(url)


@never_cache
def callback(request, platform):
    """The platform sends the browser back with ``code`` and our ``state``: code → userid → student → signed in."""
    if platform not in PLATFORMS:
        raise Http404
    pending = request.session.pop(STATE_KEY, None) or {}
    state = request.GET.get("state", "")
    if (
        not state
        or not constant_time_compare(state, pending.get("state", ""))
        or pending.get("platform") != platform
        or time.time() - pending.get("at", 0) > STATE_SECONDS
    ):
        return _refuse(request, _("登录请求已失效或不是从本页面发起的，请回到登录页重新登录。"), status=400)
    channel = PLATFORMS[platform].app()
    code = request.GET.get("authCode") or request.GET.get("code") or ""
    if channel is None:
        raise Http404
    if not code:
        return _refuse(request, _("没有完成授权，请重新登录。"), status=400)
    try:
        if platform == "wecom":
            userid = wecom.userid_for_code(_wecom_config(channel), code)
        else:
            # The web OAuth page's authCode: the new API (the in-app 免登 code is another exchange).
            userid = dingtalk.userid_for_auth_code(_dingtalk_config(channel), code)
    except ProviderError as exc:
        # The code and errmsg only: never the secret or the access token.
        logger.warning("campus sign-in %s: %s", platform, exc)
        return _refuse(
            request,
            _("暂时无法通过%(app)s登录，请稍后再试，或用学号和密码登录。") % {"app": _label(platform)},
            status=502,
        )
    except Exception:  # an unexpected answer must not become a server error
        logger.exception("campus sign-in %s failed", platform)
        return _refuse(
            request,
            _("暂时无法通过%(app)s登录，请稍后再试，或用学号和密码登录。") % {"app": _label(platform)},
            status=502,
        )
    user = CampusAppBackend().authenticate(request, campus_platform=platform, campus_userid=userid)
    if user is None:
        return _refuse(
            request,
            _(
                "你的%(app)s账号没有对应的学籍记录，无法登录本系统。"
                "如果你是本校新生，请用学号、姓名和证件号码后六位激活账号，或联系学籍科核实。"
            )
            % {"app": _label(platform)},
            status=403,
        )
    login(request, user, backend=BACKEND)
    return HttpResponseRedirect(pending.get("next") or reverse(settings.LOGIN_REDIRECT_URL))


def _label(platform: str) -> str:
    return str(PLATFORMS[platform].channel.label)
