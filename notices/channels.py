"""The channels that reach a student: SMS, WeCom app messages, DingTalk work notifications and the console.

Each is one outbox channel (notices/outbox.py) over a platform client of
notices/providers/, configured by the school in ``ChannelConfig`` (the
registrar's 提醒渠道 page): key ids and templates in ``options``, the secret
encrypted.  A channel that is not configured, or disabled, reaches nobody, so
the outbox falls back to the next one.  The school's order of channels is
``reminder_channel_order()``; ``reach_estimate()`` says how many students each
channel would take (and so how many SMS a bulk send costs) before it is sent.

SMS is not sent in quiet hours (``SMS_QUIET_HOURS``, 22:00–08:00 by default)
unless the registrar allows it: such a row is deferred to the end of the quiet
hours, not dropped.
"""

import datetime
import logging
import re

from django.conf import settings
from django.db.models import Q
from django.utils import dateformat, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import ChannelConfig
from .outbox import CHANNELS, Channel, Defer, OutgoingMessage, PermanentFailure, RetryLater, register
from .providers import aliyun_sms, dingtalk, tencent_sms, wecom
from .providers.http import ProviderError

logger = logging.getLogger(__name__)

# The channels of this module and e-mail, in the stable order of the operator's report.
STUDENT_CHANNELS = ("sms", "wecom", "dingtalk", "email", "console")
# Student attributes a school may use as the WeCom / DingTalk userid.
USERID_FIELDS = {
    "student_number": gettext_lazy("学号"),
    "exam_number": gettext_lazy("考生号"),
    "phone": gettext_lazy("手机号码"),
    "email": gettext_lazy("电子邮箱"),
}
# Staff attributes a school may use as the WeCom / DingTalk userid of staff; unset, staff are not reached there.
STAFF_USERID_FIELDS = {"username": gettext_lazy("登录账号（工号）"), "email": gettext_lazy("电子邮箱")}
MOBILE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")
MOBILE_SQL = r"^(\+?86)?1[3-9][0-9]{9}$"


def config_of(name: str) -> ChannelConfig | None:
    return ChannelConfig.objects.filter(name=name).first()


def reminder_channel_order() -> list[str]:
    """The school's order: the enabled ``ChannelConfig`` rows, else ``settings.REMINDER_CHANNELS``."""
    configured = list(
        ChannelConfig.objects.filter(enabled=True).order_by("position", "id").values_list("name", flat=True)
    )
    names = configured or list(settings.REMINDER_CHANNELS)
    # The group robot posts to a class or a department, never to one student.
    return [name for name in names if name in CHANNELS and name != "robot"] or ["email"]


def _raise_for(exc: ProviderError):
    reason = f"{type(exc).__name__}: {exc}"[:500]
    raise (RetryLater if exc.retry else PermanentFailure)(reason) from exc


def _variables(message: OutgoingMessage) -> dict:
    # ReminderStream.compose fills them: the student's name, the deadline and the link.
    return message.options.get("variables") or {}


class ConfiguredChannel(Channel):
    """A channel whose credentials the school configures; not configured or disabled, it reaches nobody."""

    required: tuple[str, ...] = ()  # option names that must be set

    def __init__(self):
        self.config = config_of(self.name)

    @property
    def ready(self) -> bool:
        config = self.config
        return bool(
            config
            and config.enabled
            and config.secret
            and all(str(config.options.get(key, "")).strip() for key in self.required)
        )

    def option(self, key: str, default=""):
        return (self.config.options or {}).get(key, default) if self.config else default


# ---------------------------------------------------------------------------
# SMS
# ---------------------------------------------------------------------------


def mobile(phone: str) -> str:
    """A mainland mobile number as providers take it (11 digits), or ""."""
    match = MOBILE.match(re.sub(r"[\s-]", "", phone or ""))
    return match.group(1) if match else ""


def _clock(text: str) -> datetime.time:
    hours, minutes = text.strip().split(":")
    return datetime.time(int(hours), int(minutes))


def quiet_until(now: datetime.datetime, *, allowed: bool = False) -> datetime.datetime | None:
    """The end of the quiet hours if ``now`` is inside them (school time), else None."""
    if allowed or not settings.SMS_QUIET_HOURS:
        return None
    start_text, end_text = settings.SMS_QUIET_HOURS.split("-")
    start, end = _clock(start_text), _clock(end_text)
    local = timezone.localtime(now)
    moment = local.time()
    inside = (moment >= start or moment < end) if start > end else (start <= moment < end)
    if not inside:
        return None
    until = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    return until if until > local else until + datetime.timedelta(days=1)


@register
class SmsChannel(ConfiguredChannel):
    """A templated SMS through Alibaba Cloud or Tencent Cloud; the template is approved, the portal fills it.

    Template variables: ``name`` (the student's name), ``deadline`` and
    ``link``; for Tencent, whose variables are numbered, {1} {2} {3} in that order.
    """

    name = "sms"
    label = gettext_lazy("短信")
    # Both providers refuse a second message to one number within a minute (Alibaba 1/min, Tencent 30 s).
    per_minute = 1
    unreachable = gettext_lazy("没有手机号码或未配置短信")

    @property
    def ready(self) -> bool:
        if not super().ready:
            return False
        provider = self.config.provider
        keys = {"aliyun": ("access_key_id",), "tencent": ("secret_id", "sdk_app_id")}.get(provider)
        return keys is not None and all(self.option(key) for key in (*keys, "sign_name", "template_id"))

    @classmethod
    def minute_budget(cls) -> int | None:
        """The account's SMS per minute: the SMS settings' own limit, else ``settings.SMS_PER_MINUTE``."""
        config = config_of(cls.name)
        if config is None or not config.enabled:
            return None
        try:
            limit = int((config.options or {}).get("per_minute") or settings.SMS_PER_MINUTE)
        except (TypeError, ValueError):
            limit = settings.SMS_PER_MINUTE
        return limit if limit > 0 else None

    def address(self, recipient) -> str:
        if isinstance(recipient, str):
            return recipient
        return mobile(getattr(recipient, "phone", "")) if self.ready else ""

    def reach_filter(self) -> Q:
        return Q(phone__regex=MOBILE_SQL) if self.ready else Q(pk__in=[])

    def send(self, message: OutgoingMessage) -> None:
        until = quiet_until(timezone.now(), allowed=bool(self.config and self.config.night_sms_allowed))
        if until is not None:
            raise Defer(_("夜间不发短信，%(time)s 发送") % {"time": until.strftime("%m-%d %H:%M")}, until=until)
        variables = _variables(message)
        config, options = self.config, self.config.options
        try:
            if config.provider == ChannelConfig.Provider.ALIYUN:
                provider = aliyun_sms.Config(
                    access_key_id=options["access_key_id"],
                    access_key_secret=config.secret,
                    sign_name=options["sign_name"],
                    template_code=options["template_id"],
                    endpoint=options.get("endpoint") or aliyun_sms.ENDPOINT,
                    region=options.get("region") or "cn-hangzhou",
                )
                aliyun_sms.send(
                    provider, message.to, {key: str(variables.get(key, "")) for key in ("name", "deadline", "link")}
                )
            else:
                provider = tencent_sms.Config(
                    secret_id=options["secret_id"],
                    secret_key=config.secret,
                    sdk_app_id=options["sdk_app_id"],
                    sign_name=options["sign_name"],
                    template_id=options["template_id"],
                    endpoint=options.get("endpoint") or tencent_sms.ENDPOINT,
                    region=options.get("region") or "ap-guangzhou",
                )
                tencent_sms.send(provider, message.to, [variables.get(key, "") for key in ("name", "deadline", "link")])
        except ProviderError as exc:
            _raise_for(exc)


# ---------------------------------------------------------------------------
# WeCom and DingTalk
# ---------------------------------------------------------------------------


class AppChannel(ConfiguredChannel):
    """A message to the student's account in the campus app; the userid is a student attribute (学号 by default)."""

    @property
    def userid_field(self) -> str:
        field = self.option("userid_field") or "student_number"
        return field if field in USERID_FIELDS else "student_number"

    def address(self, recipient) -> str:
        if isinstance(recipient, str):
            return recipient
        return str(getattr(recipient, self.userid_field, "") or "").strip() if self.ready else ""

    def reach_filter(self) -> Q:
        return ~Q(**{self.userid_field: ""}) if self.ready else Q(pk__in=[])

    def staff_address(self, user) -> str:
        """A member of staff's userid, by the school's ``staff_userid_field``; "" when not set or not ready."""
        field = self.option("staff_userid_field")
        if not self.ready or field not in STAFF_USERID_FIELDS:
            return ""
        return str(getattr(user, field, "") or "").strip()

    def agent_id(self) -> int:
        try:
            return int(self.option("agent_id"))
        except (TypeError, ValueError):
            raise PermanentFailure(_("应用 AgentId 不是数字")) from None


@register
class WecomChannel(AppChannel):
    name = "wecom"
    label = gettext_lazy("企业微信")
    unreachable = gettext_lazy("未配置企业微信或没有企业微信账号")
    required = ("corp_id", "agent_id")

    def send(self, message: OutgoingMessage) -> None:
        config = wecom.Config(
            corp_id=self.option("corp_id"),
            agent_id=self.agent_id(),
            secret=self.config.secret,
            api=self.option("api") or wecom.API,
        )
        try:
            wecom.send_textcard(
                config,
                message.to,
                title=message.subject,
                description=message.summary or message.body,
                url=_variables(message).get("link", ""),
                button=_("去核对"),
            )
        except ProviderError as exc:
            _raise_for(exc)


@register
class DingtalkChannel(AppChannel):
    name = "dingtalk"
    label = gettext_lazy("钉钉")
    unreachable = gettext_lazy("未配置钉钉或没有钉钉账号")
    required = ("app_key", "agent_id")

    def send(self, message: OutgoingMessage) -> None:
        config = dingtalk.Config(
            app_key=self.option("app_key"),
            app_secret=self.config.secret,
            agent_id=self.agent_id(),
            api=self.option("api") or dingtalk.API,
        )
        try:
            dingtalk.send_action_card(
                config,
                message.to,
                title=message.subject,
                markdown=message.summary or message.body,
                url=_variables(message).get("link", ""),
                button=_("去核对"),
            )
        except ProviderError as exc:
            _raise_for(exc)


# ---------------------------------------------------------------------------
# Console: the embedded default
# ---------------------------------------------------------------------------


@register
class ConsoleChannel(Channel):
    """Writes the reminder to the log and succeeds: the demo and development see every reminder "sent"."""

    name = "console"
    label = gettext_lazy("控制台（仅写日志）")

    def address(self, recipient) -> str:
        if isinstance(recipient, str):
            return recipient
        return getattr(recipient, "student_number", "") or f"student-{recipient.pk}"

    def reach_filter(self) -> Q:
        return Q(pk__isnull=False)

    def send(self, message: OutgoingMessage) -> None:
        logger.info("reminder to %s: %s %s", message.to, message.subject, _variables(message).get("link", ""))


# ---------------------------------------------------------------------------
# Estimates
# ---------------------------------------------------------------------------


def _partition(students, order: list[str]):
    """(channel name, the students it takes) in order, first reachable first; then (None, the unreachable)."""
    remaining = students
    for name in order:
        channel = CHANNELS[name]()
        try:
            reach = channel.reach_filter()
            if reach is None:  # a channel without a filter: asked student by student
                reach = Q(pk__in=[s.pk for s in remaining if channel.can_reach(s)])
        finally:
            channel.close()
        yield name, remaining.filter(reach)
        remaining = remaining.exclude(reach)
    yield None, remaining


def reach_estimate(students, order: list[str] | None = None) -> dict:
    """How many of ``students`` (a Student queryset) each channel would take, first reachable first.

    ``{"by_channel": {"sms": 3, "wecom": 0, …, "console": 0}, "unreachable": 1}``: every
    student channel is named, in the stable order of the operator's report.
    """
    order = order if order is not None else reminder_channel_order()
    by_channel = dict.fromkeys(STUDENT_CHANNELS, 0)
    unreachable = 0
    for name, taken in _partition(students, order):
        if name is None:
            unreachable = taken.count()
        else:
            by_channel[name] = by_channel.get(name, 0) + taken.count()
    return {"by_channel": by_channel, "unreachable": unreachable}


# What providers bill: a message of up to 70 characters (the 【签名】 included) is one SMS; a longer one
# is sent in parts of 67 (the rest carries the parts' header).  Chinese and Latin characters count alike.
SMS_SINGLE = 70
SMS_PART = 67
# The reminder as most schools have it approved when the SMS settings give no template text.
DEFAULT_SMS_TEMPLATE = "${name}同学：请在${deadline}前登录学籍核对系统核对你的学籍信息：${link}"


def sms_text(template: str, sign_name: str, variables: dict) -> str:
    """The SMS a student receives: the approved template filled (``${name}`` or Tencent's ``{1}``), signed."""
    text = template or DEFAULT_SMS_TEMPLATE
    for number, key in enumerate(("name", "deadline", "link"), start=1):
        value = str(variables.get(key, ""))
        text = text.replace("${" + key + "}", value).replace("{" + str(number) + "}", value)
    return f"【{sign_name}】{text}" if sign_name else text


def sms_parts(text: str) -> int:
    """How many SMS the provider bills for one message."""
    return 1 if len(text) <= SMS_SINGLE else -(-len(text) // SMS_PART)


def send_estimate(students, *, campaign, order: list[str] | None = None) -> dict:
    """``reach_estimate`` of a send to ``students``, with what its SMS would cost.

    ``sms_messages``: students reached by SMS; ``sms_parts``: the SMS billed for them, from the
    template text of the SMS settings filled with each student's name, the deadline and the link.
    """
    order = order if order is not None else reminder_channel_order()
    estimate = reach_estimate(students, order)
    estimate |= {"sms_messages": 0, "sms_parts": 0, "total": sum(estimate["by_channel"].values())}
    estimate["total"] += estimate["unreachable"]
    if "sms" not in order or not estimate["by_channel"]["sms"]:
        return estimate
    config = config_of("sms")
    options = (config.options if config else {}) or {}
    deadline = dateformat.format(timezone.localtime(campaign.closes_at), _("m月d日 H:i"))
    link = settings.PORTAL_URL.rstrip("/") + f"/check/{campaign.pk}/"
    taken = dict(_partition(students, order[: order.index("sms") + 1]))["sms"]
    for name in taken.values_list("name", flat=True).iterator():
        variables = {"name": name, "deadline": deadline, "link": link}
        text = sms_text(options.get("template_text", ""), options.get("sign_name", ""), variables)
        estimate["sms_messages"] += 1
        estimate["sms_parts"] += sms_parts(text)
    return estimate
