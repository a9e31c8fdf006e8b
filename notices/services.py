"""Notices, help articles, in-portal messages, reminders and robots: what the pages write.

The reads are in notices/selectors.py.  Student ids that come from a form are
checked against ``students.permissions`` scopes: one outside the user's scope
raises ``students.errors.NotFound``, a 404 in the view.
"""

import datetime
import re
import secrets
import zipfile
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import dateformat, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from students.errors import NotFound, ServiceError
from students.models import ClassGroup, Department, User
from students.permissions import require_capability, students_for
from verification.evidence import safe_name
from verification.models import Campaign, Checklist, Flag

from . import channels, outbox, reminders
from .models import (
    ChannelConfig,
    DepartmentChannel,
    HelpArticle,
    Message,
    Notice,
    NoticeAttachment,
    NoticeRead,
    ReminderStage,
)
from .notifications import notify_student
from .selectors import attachment_dir, attachment_path


class NoticeError(ServiceError):
    """A refused action; the message is meant for the person who tried it."""


# ---------------------------------------------------------------------------
# Notices
# ---------------------------------------------------------------------------


@transaction.atomic
def notice_save(*, notice: Notice, cohorts, departments, by) -> Notice:
    """Create or update a notice and its audience.  A campaign's notice is due when the campaign closes."""
    if notice.pk is None:
        notice.created_by = by
    if notice.campaign_id and notice.deadline is None:
        notice.deadline = notice.campaign.closes_at
    notice.save()
    notice.cohorts.set(cohorts)
    notice.departments.set(departments)
    return notice


def notice_publish(*, notice: Notice, now=None) -> Notice:
    if notice.published_at is None or notice.published_at > (now or timezone.now()):
        notice.published_at = now or timezone.now()
        notice.save(update_fields=["published_at", "updated_at"])
    return notice


def notice_unpublish(*, notice: Notice) -> Notice:
    if notice.published_at is not None:
        notice.published_at = None
        notice.save(update_fields=["published_at", "updated_at"])
    return notice


def notice_mark_read(*, notice: Notice, user) -> bool:
    """Record that the user read the notice; True the first time only."""
    try:
        with transaction.atomic():
            NoticeRead.objects.create(notice=notice, user=user)
    except IntegrityError:
        return False
    return True


# ---------------------------------------------------------------------------
# Notice attachments: checked by content, stored privately with random names
# ---------------------------------------------------------------------------

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_MAGIC = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
)
# Office files are ZIP packages; the part that names the document type tells them apart.
_OFFICE = (("word/document.xml", DOCX, ".docx"), ("xl/workbook.xml", XLSX, ".xlsx"))


def _office_kind(upload) -> tuple[str, str] | None:
    upload.seek(0)
    try:
        with zipfile.ZipFile(upload) as package:
            names = set(package.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "[Content_Types].xml" not in names or any(name.lower().endswith("vbaproject.bin") for name in names):
        return None  # not an Office package, or one with macros (.docm/.xlsm renamed)
    for part, content_type, extension in _OFFICE:
        if part in names:
            return content_type, extension
    return None


def attachment_kind(upload) -> tuple[str, str]:
    """(content type, extension) from the file's bytes, whatever its name says; NoticeError otherwise."""
    name = safe_name(upload.name)
    if upload.size > MAX_ATTACHMENT_BYTES:
        raise NoticeError(_("“%(name)s”超过 20 MB") % {"name": name})
    upload.seek(0)
    head = upload.read(16)
    for magic, content_type, extension in _MAGIC:
        if head.startswith(magic):
            return content_type, extension
    if head.startswith(b"PK\x03\x04"):
        kind = _office_kind(upload)
        if kind:
            return kind
    raise NoticeError(_("“%(name)s”不是 PDF、Word（.docx）、Excel（.xlsx）、JPEG 或 PNG 文件") % {"name": name})


def attachment_add(*, notice: Notice, upload) -> NoticeAttachment:
    """Validate an upload and keep it under PRIVATE_ROOT/notices with a random name."""
    content_type, extension = attachment_kind(upload)
    storage_name = secrets.token_hex(16) + extension
    attachment_dir().mkdir(parents=True, exist_ok=True)
    target = attachment_dir() / storage_name
    size = 0
    upload.seek(0)
    try:
        with open(target, "wb") as out:
            for chunk in upload.chunks():
                size += len(chunk)
                if size > MAX_ATTACHMENT_BYTES:
                    raise NoticeError(_("“%(name)s”超过 20 MB") % {"name": safe_name(upload.name)})
                out.write(chunk)
        original = safe_name(upload.name)
        stem = original.rsplit(".", 1)[0] if "." in original else original
        return NoticeAttachment.objects.create(
            notice=notice,
            storage_name=storage_name,
            original_name=(stem[:190] + extension),
            content_type=content_type,
            size=size,
        )
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def attachment_delete(*, attachment: NoticeAttachment):
    path = attachment_path(attachment)
    attachment.delete()
    transaction.on_commit(partial(path.unlink, missing_ok=True))


# ---------------------------------------------------------------------------
# Help centre
# ---------------------------------------------------------------------------


def help_article_save(*, article: HelpArticle, by) -> HelpArticle:
    article.updated_by = by
    article.save()
    return article


# ---------------------------------------------------------------------------
# In-portal messages
# ---------------------------------------------------------------------------


def message_send(*, user, text: str, url: str = "") -> Message | None:
    if user is None:
        return None
    return Message.objects.create(user=user, text=text[:500], url=url[:300])


def messages_mark_read(*, user):
    Message.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())


def _flag_texts() -> dict:
    S = Flag.Status
    return {
        S.RETURNED: _("你的“%(label)s”报错已被退回：%(reason)s"),
        S.FORWARDED: _("你的“%(label)s”报错已通过院系审核，已转学籍科处理。"),
        S.ACCEPTED: _("你的“%(label)s”报错已被学籍科受理。"),
        S.SUBMITTED_TO_CHSI: _("你的“%(label)s”报错已由学籍科提交学信网更正。"),
        S.CORRECTED: _("你的“%(label)s”报错学信网已更正，请登录学信网查看并重新核对。"),
        S.NOT_RESUBMITTED: _("你的“%(label)s”报错被退回后未在院系汇总截止前重新提交，已关闭。"),
    }


def flag_closed_notify(*, flag: Flag):
    """A returned flag closed as 逾期未重新提交: the student hears it on their channel (the outbox), once.

    Keyed by the flag, so the closing job run twice, or the flag reopened by a later
    departments' deadline and closed again, does not tell them twice.
    """
    with translation.override(settings.LANGUAGE_CODE):
        student = Checklist.objects.select_related("student").get(pk=flag.checklist_id).student
        notify_student(
            student=student,
            key=f"flag-{flag.pk}-not-resubmitted",
            subject=_("【学籍核对】你的报错已关闭"),
            body=_(
                "你的“%(label)s”报错被退回后，未在院系汇总截止前重新提交，已按“逾期未重新提交”关闭。"
                "如信息仍有误，请联系院系或学籍科。"
            )
            % {"label": flag.field.label},
            url=reverse("verification:flag_detail", args=[flag.pk]),
        )


def ticket_reply_notify(*, ticket, reply):
    """A registrar reply to a student's request for help reaches them on their channel (the outbox), once.

    Keyed by the reply: a reply is told once however often the receiver runs; the page and the
    in-portal message show it too.  Written in the reply's transaction, sent after its commit.
    """
    with translation.override(settings.LANGUAGE_CODE):
        text = reply.text if len(reply.text) <= 600 else reply.text[:600] + "……"
        notify_student(
            student=ticket.checklist.student,
            key=f"ticket-reply-{reply.pk}",
            subject=_("【学籍核对】学籍科回复了你的求助"),
            body=_("学籍科回复了你的求助“%(kind)s”：%(text)s") % {"kind": ticket.get_kind_display(), "text": text},
            url=reverse("verification:checklist", args=[ticket.checklist.campaign_id]) + "#help",
        )


def _message_after_commit(user_id: int, text: str, url: str):
    message_send(user=User.objects.filter(pk=user_id, is_active=True).first(), text=text, url=url)


def flag_change_notify(*, flag: Flag, to: str, note: str = ""):
    """Tell the student, once the change is committed, that a flag of theirs changed state.

    Only the moves staff make are told (not the student's own submit or withdraw).
    The text is written in the portal's language, not the actor's.
    """
    with translation.override(settings.LANGUAGE_CODE):
        template = _flag_texts().get(to)
        if template is None:
            return
        user_id = Checklist.objects.filter(pk=flag.checklist_id).values_list("student__user_id", flat=True).first()
        if user_id is None:
            return
        reason = (note or "").strip() or _("未填写原因")
        text = template % {"label": flag.field.label, "reason": reason[:300]}
    url = reverse("verification:flag_detail", args=[flag.pk])
    transaction.on_commit(partial(_message_after_commit, user_id, text, url))


# ---------------------------------------------------------------------------
# Reminder plan, "remind these now" and the delivery log
# ---------------------------------------------------------------------------

MAX_DAYS_BEFORE = 60
REQUEST_KEY = re.compile(r"^[A-Za-z0-9_-]{16,48}$")


def reminder_stage_add(*, campaign: Campaign, days_before: int, now=None) -> ReminderStage:
    """Add "N days before close" to the plan; refused when that moment has passed."""
    now = now or timezone.now()
    if not 1 <= days_before <= MAX_DAYS_BEFORE:
        raise NoticeError(_("请填写 1 到 %(max)s 之间的天数") % {"max": MAX_DAYS_BEFORE})
    if campaign.closes_at - datetime.timedelta(days=days_before) <= now:
        passed = ngettext(
            "截止前 %(n)s 天已经过去；需要现在提醒请在班级页面使用“立即提醒”。",
            "截止前 %(n)s 天已经过去；需要现在提醒请在班级页面使用“立即提醒”。",
            days_before,
        )
        raise NoticeError(passed % {"n": days_before})
    return reminders.stage_add(campaign=campaign, days_before=days_before)


def reminder_stage_remove(*, stage: ReminderStage) -> bool:
    if stage.kind == ReminderStage.Kind.MANUAL:
        return False
    return reminders.stage_remove(stage=stage)


def request_key_new() -> str:
    return secrets.token_urlsafe(24)


def class_remind_now(
    *, user, campaign: Campaign, class_group: ClassGroup, student_ids: list[int] | None, request_key: str, now=None
) -> tuple[ReminderStage, bool]:
    """Remind chosen students of a class (or all its unfinished ones) now; (stage, created).

    The form's one-time key, namespaced by the user, makes a double submit send once.
    A class or a student outside the user's scope raises ``NotFound``.
    """
    require_capability(user, "reminder.remind_class", class_group)
    if not REQUEST_KEY.match(request_key or ""):
        raise NoticeError(_("页面已过期，请刷新后重试。"))
    if not campaign.is_open(now):
        raise NoticeError(_("核对活动未在进行中，不能发送提醒。"))
    in_class = Checklist.objects.filter(
        campaign=campaign, student__class_group=class_group, student__in=students_for(user)
    )
    if student_ids is None:
        chosen = list(in_class.filter(state__in=reminders.UNFINISHED).values_list("student_id", flat=True))
    else:
        chosen = sorted(set(student_ids))
        if len(chosen) != in_class.filter(student_id__in=chosen).count():
            raise NotFound
    if not chosen:
        raise NoticeError(_("请至少选择一名未完成核对的同学。"))
    key = f"u{user.pk}-{request_key}"
    if ReminderStage.objects.filter(request_key=key).exists():
        return ReminderStage.objects.get(request_key=key), False
    stage = reminders.remind_now(campaign=campaign, student_ids=chosen, by=user, request_key=key, now=now)
    return stage, True


# ---------------------------------------------------------------------------
# Department digests and group robots
# ---------------------------------------------------------------------------


def channel_save(
    *,
    department: Department,
    robot: str,
    webhook_url: str = "",
    signing_secret: str = "",
    clear_secret: bool = False,
) -> DepartmentChannel:
    """Set a department's group robot.

    Pages never show the saved address or secret (they hold the robot's token),
    so an empty one keeps what was saved before for the same kind of robot.
    """
    channel, _created = DepartmentChannel.objects.get_or_create(department=department)
    if not robot:
        channel.webhook_url = ""
    elif webhook_url:
        channel.webhook_url = webhook_url
    elif channel.robot != robot or not channel.webhook_url:
        raise NoticeError(_("请填写 Webhook 地址"))
    channel.robot = robot
    if clear_secret or not robot:
        channel.signing_secret = ""
    elif signing_secret:
        channel.signing_secret = signing_secret
    channel.save()
    return channel


# ---------------------------------------------------------------------------
# The school's reminder channels (提醒渠道)
# ---------------------------------------------------------------------------


def _channel_configs_in_order() -> list[ChannelConfig]:
    """A row for every student channel, in the page's order; rows are created for those without one.

    With no channel enabled, reminders follow ``settings.REMINDER_CHANNELS``: that order is written as
    the first rows, so that what the page shows is what the outbox does from the first change on.
    """
    existing = {config.name: config for config in ChannelConfig.objects.all()}
    if not any(config.enabled for config in existing.values()):
        defaults = [name for name in settings.REMINDER_CHANNELS if name in channels.STUDENT_CHANNELS]
        for position, name in enumerate(defaults, start=1):
            config = existing.get(name) or ChannelConfig(name=name)
            config.enabled, config.position = True, position
            config.save()
            existing[name] = config
    for name in channels.STUDENT_CHANNELS:
        if name not in existing:
            existing[name] = ChannelConfig.objects.create(name=name, enabled=False, position=90)
    order = list(channels.STUDENT_CHANNELS)
    return sorted((existing[name] for name in order), key=lambda c: (not c.enabled, c.position, order.index(c.name)))


@transaction.atomic
def reminder_channel_save(
    *,
    name: str,
    enabled: bool,
    position: int,
    options: dict,
    option_keys=(),
    secret: str = "",
    provider: str = "",
    night_sms_allowed: bool = False,
    by,
) -> ChannelConfig:
    """Save one channel's settings; an empty ``secret`` keeps the saved one (pages never show it).

    ``option_keys`` are the options the page edits: those are replaced by ``options``, the others
    (an administrator's ``endpoint`` or ``api``) are kept.
    """
    if name not in channels.STUDENT_CHANNELS:
        raise NotFound
    list(ChannelConfig.objects.select_for_update().order_by("pk"))  # one change to the order at a time
    configs = _channel_configs_in_order()
    config = next(c for c in configs if c.name == name)
    kept = {key: value for key, value in (config.options or {}).items() if key not in set(option_keys) | set(options)}
    config.enabled, config.options = enabled, kept | options
    config.provider, config.night_sms_allowed = provider, night_sms_allowed and name == "sms"
    if secret:
        config.secret = secret
    config.updated_by = by
    config.save()
    # "顺序 2" puts the channel second: the other enabled channels keep their order around it.
    others = [c for c in configs if c.enabled and c is not config]
    if enabled:
        others.insert(max(0, position - 1), config)
    for place, each in enumerate(others, start=1):
        if each.position != place:
            each.position = place
            each.save(update_fields=["position"])
    return config


@transaction.atomic
def reminder_channel_move(*, name: str, step: int, by) -> bool:
    """Move an enabled channel one place earlier (-1) or later (+1) in the order; False when it cannot move."""
    if name not in channels.STUDENT_CHANNELS:
        raise NotFound
    list(ChannelConfig.objects.select_for_update().order_by("pk"))  # one change to the order at a time
    enabled = [config for config in _channel_configs_in_order() if config.enabled]
    names = [config.name for config in enabled]
    if name not in names or step not in (-1, 1) or not 0 <= names.index(name) + step < len(names):
        return False
    index = names.index(name)
    enabled[index], enabled[index + step] = enabled[index + step], enabled[index]
    for position, config in enumerate(enabled, start=1):
        config.position = position
        config.updated_by = by if config.name == name else config.updated_by
        config.save(update_fields=["position", "updated_by", "updated_at"])
    return True


def reminder_channel_test(*, name: str, to: str, by) -> str:
    """Send one test message on a channel now (not through the outbox); the address it went to.

    The saved settings are used even before the channel is enabled, so that the
    registrar can try them first.  Raises ``NoticeError`` with the platform's answer.
    """
    if name not in channels.STUDENT_CHANNELS:
        raise NotFound
    channel = outbox.CHANNELS[name]()
    config = getattr(channel, "config", None)
    if config is not None:
        config.enabled = True  # in memory only: try before enabling
    if not getattr(channel, "ready", True):
        raise NoticeError(_("请先填写并保存这个渠道的设置。"))
    address = channels.mobile(to) if name == "sms" else (to or "").strip()
    if not address:
        raise NoticeError(_("请填写正确的手机号码。") if name == "sms" else _("请填写收件人。"))
    deadline = dateformat.format(timezone.localtime() + datetime.timedelta(days=1), _("m月d日 H:i"))
    link = settings.PORTAL_URL.rstrip("/") + "/"
    who = by.get_full_name() or by.get_username()
    message = outbox.OutgoingMessage(
        to=address,
        subject=_("【学籍核对】测试消息"),
        body=_("这是一条测试消息，由 %(who)s 在提醒渠道设置页发送。") % {"who": who},
        summary=_("这是一条测试消息，由 %(who)s 在提醒渠道设置页发送。") % {"who": who},
        options={"variables": {"name": who, "deadline": deadline, "link": link}},
    )
    try:
        channel.send(message)
    except outbox.Defer as exc:
        raise NoticeError(str(exc)) from None
    except outbox.SendError as exc:
        raise NoticeError(_("发送失败：%(reason)s") % {"reason": exc}) from None
    finally:
        channel.close()
    return address
