"""Notices, help articles, in-portal messages, and what the reminder and digest pages read and write.

Every read of student data is scoped through ``students.permissions``; a
record outside the viewer's scope raises ``DoesNotExist`` here and becomes a
404 in the view.
"""

import datetime
import re
import secrets
import zipfile
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from students.models import ClassGroup, Department, Student, User
from students.permissions import departments_for, is_registrar, is_staff_member, own_student, students_for
from verification.evidence import safe_name
from verification.models import Campaign, Checklist, Flag

from . import reminders
from .models import (
    Delivery,
    DepartmentChannel,
    Digest,
    HelpArticle,
    Message,
    Notice,
    NoticeAttachment,
    NoticeRead,
    ReminderStage,
)


class NoticeError(ValueError):
    """A refused action; the message is meant for the person who tried it."""


# ---------------------------------------------------------------------------
# Notices
# ---------------------------------------------------------------------------


def notices_for_student(*, student: Student) -> QuerySet[Notice]:
    """Published notices meant for this student's cohort and department."""
    now = timezone.now()
    return (
        Notice.objects.filter(published_at__lte=now)
        .filter(Q(cohorts__isnull=True) | Q(cohorts=student.cohort_id))
        .filter(Q(departments__isnull=True) | Q(departments=student.department_id))
        .distinct()
    )


def notices_with_read_flag(*, student: Student, user) -> list[Notice]:
    """Unread first, then newest first; each notice carries ``is_read``."""
    notices = list(notices_for_student(student=student).order_by("-published_at"))
    read = set(NoticeRead.objects.filter(user=user, notice__in=notices).values_list("notice_id", flat=True))
    for notice in notices:
        notice.is_read = notice.pk in read
    notices.sort(key=lambda n: (n.is_read, -n.published_at.timestamp()))
    return notices


def notices_unread_exist(*, user) -> bool:
    student = own_student(user)
    if student is None:
        return False
    return notices_for_student(student=student).exclude(reads__user=user).exists()


def notices_for_staff(*, user) -> QuerySet[Notice]:
    """Registrar staff see drafts too; secretaries see what has been published."""
    notices = Notice.objects.select_related("campaign").prefetch_related("cohorts", "departments")
    if is_registrar(user):
        return notices
    if is_staff_member(user):
        return notices.filter(published_at__lte=timezone.now())
    return notices.none()


def notice_for_viewer(*, user, notice_id: int) -> Notice:
    """A notice the user may open: staff as above, a student only if it is meant for them."""
    if is_staff_member(user):
        return notices_for_staff(user=user).get(pk=notice_id)
    student = own_student(user)
    if student is None:
        raise Notice.DoesNotExist
    return notices_for_student(student=student).select_related("campaign").get(pk=notice_id)


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


def notice_audience(*, notice: Notice, viewer) -> QuerySet[Student]:
    """The students a notice is meant for, as far as the viewer may see them."""
    audience = students_for(viewer)
    cohort_ids = list(notice.cohorts.values_list("pk", flat=True))
    department_ids = list(notice.departments.values_list("pk", flat=True))
    if cohort_ids:
        audience = audience.filter(cohort_id__in=cohort_ids)
    if department_ids:
        audience = audience.filter(department_id__in=department_ids)
    return audience


def notice_read_rates(*, notice: Notice, group: str, viewer) -> list[dict]:
    """Per class or department of the viewer's scope: students in the audience, how many read it.

    Classes are told apart by department too: two departments may both have a 计算2501.
    """
    keys = {"class": ["department__name", "class_group__name"], "department": ["department__name"]}[group]
    readers = NoticeRead.objects.filter(notice=notice).values("user_id")
    rows = (
        notice_audience(notice=notice, viewer=viewer)
        .order_by()
        .values(*keys)
        .annotate(total=Count("id"), read=Count("id", filter=Q(user_id__in=readers)))
        .order_by(*keys)
    )
    return [
        {
            "department": row["department__name"],
            "name": row[keys[-1]] or "—",
            "total": row["total"],
            "read": row["read"],
            "rate": row["read"] / row["total"],
        }
        for row in rows
    ]


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


def attachment_dir() -> Path:
    return Path(settings.PRIVATE_ROOT) / "notices"


def attachment_path(attachment: NoticeAttachment) -> Path:
    return attachment_dir() / attachment.storage_name


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


def attachment_for_viewer(*, user, attachment_id: int) -> NoticeAttachment:
    """An attachment of a notice the user may open, or ``DoesNotExist``."""
    attachment = NoticeAttachment.objects.select_related("notice").get(pk=attachment_id)
    try:
        notice_for_viewer(user=user, notice_id=attachment.notice_id)
    except Notice.DoesNotExist:
        raise NoticeAttachment.DoesNotExist from None
    return attachment


# ---------------------------------------------------------------------------
# Help centre
# ---------------------------------------------------------------------------


def help_search(*, query: str = "") -> QuerySet[HelpArticle]:
    """Articles whose title, body or keywords contain every word of the query ("5 次" finds "只有 5 次机会")."""
    articles = HelpArticle.objects.all()
    for word in query.split()[:8]:
        articles = articles.filter(Q(title__icontains=word) | Q(body__icontains=word) | Q(keywords__icontains=word))
    return articles


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


def messages_for(*, user) -> QuerySet[Message]:
    return Message.objects.filter(user=user)


def messages_unread_count(*, user) -> int:
    return Message.objects.filter(user=user, read_at__isnull=True).count()


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
    }


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


def reminder_plan(*, campaign: Campaign) -> list[ReminderStage]:
    """The campaign's stages in send order, each with how many reminders it wrote and sent."""
    stages = list(
        campaign.reminder_stages.select_related("created_by")
        .annotate(
            written=Count("deliveries"),
            sent=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.SENT)),
        )
        .order_by("send_at", "id")  # Meta.ordering is not applied to an aggregating query
    )
    for stage in stages:
        stage.before_opening = stage.kind != ReminderStage.Kind.MANUAL and stage.send_at < campaign.opens_at
        stage.removable = stage.dispatched_at is None and stage.kind != ReminderStage.Kind.MANUAL
    return stages


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
    A student outside the class or the user's scope raises ``Student.DoesNotExist``.
    """
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
            raise Student.DoesNotExist
    if not chosen:
        raise NoticeError(_("请至少选择一名未完成核对的同学。"))
    key = f"u{user.pk}-{request_key}"
    if ReminderStage.objects.filter(request_key=key).exists():
        return ReminderStage.objects.get(request_key=key), False
    stage = reminders.remind_now(campaign=campaign, student_ids=chosen, by=user, request_key=key, now=now)
    return stage, True


DELIVERY_FILTERS = {
    "pending": [Delivery.Status.PENDING, Delivery.Status.SENDING],
    "sent": [Delivery.Status.SENT],
    "failed": [Delivery.Status.FAILED],
    "skipped": [Delivery.Status.SKIPPED],
}


def delivery_summary(*, campaign: Campaign) -> dict:
    counts = reminders.delivery_counts(campaign=campaign)
    summary = {name: sum(counts.get(status, 0) for status in statuses) for name, statuses in DELIVERY_FILTERS.items()}
    summary["total"] = sum(summary.values())
    return summary


def delivery_log(*, campaign: Campaign, status: str = "", stage_id=None, query: str = "") -> QuerySet[Delivery]:
    """One row per reminder and student, newest stage first; filterable by state, stage and 学号/姓名."""
    rows = (
        Delivery.objects.filter(campaign=campaign)
        .select_related("stage", "student__department", "student__class_group")
        .order_by("-stage__send_at", "stage_id", "student__student_number")
    )
    if status in DELIVERY_FILTERS:
        rows = rows.filter(status__in=DELIVERY_FILTERS[status])
    if stage_id:
        rows = rows.filter(stage_id=stage_id)
    query = query.strip()
    if query:
        rows = rows.filter(Q(student__student_number__startswith=query) | Q(student__name__icontains=query))
    return rows


# ---------------------------------------------------------------------------
# Department digests and group robots
# ---------------------------------------------------------------------------


def digests_for(*, user) -> QuerySet[Digest]:
    return (
        Digest.objects.filter(department__in=departments_for(user))
        .exclude(storage_name="")
        .select_related("department", "campaign")
    )


def digest_for_viewer(*, user, digest_id: int) -> Digest:
    return digests_for(user=user).get(pk=digest_id)


def digest_file(digest: Digest) -> Path:
    from .digests import digest_path

    return digest_path(digest)


def channels_overview() -> list[tuple[Department, DepartmentChannel | None]]:
    channels = {c.department_id: c for c in DepartmentChannel.objects.all()}
    return [(department, channels.get(department.pk)) for department in Department.objects.order_by("name")]


def secret_masked(secret: str) -> str:
    if not secret:
        return ""
    return secret[:3] + "•" * 8 + (secret[-4:] if len(secret) > 10 else "")


def channel_save(
    *, department: Department, robot: str, webhook_url: str, signing_secret: str = "", clear_secret: bool = False
) -> DepartmentChannel:
    """Set a department's group robot.  An empty secret keeps the one saved before."""
    channel, _created = DepartmentChannel.objects.get_or_create(department=department)
    channel.robot = robot
    channel.webhook_url = webhook_url if robot else ""
    if clear_secret or not robot:
        channel.signing_secret = ""
    elif signing_secret:
        channel.signing_secret = signing_secret
    channel.save()
    return channel


def latest_notice_read_rates(*, campaign, viewer, group: str) -> tuple[Notice | None, list[dict]]:
    """The campaign's most recent published notice and its read rates, for the dashboards.

    A fixed handful of queries, whatever the number of classes or departments.
    """
    notice = (
        Notice.objects.filter(campaign=campaign, published_at__lte=timezone.now()).order_by("-published_at").first()
        if campaign
        else None
    )
    if notice is None:
        return None, []
    return notice, notice_read_rates(notice=notice, group=group, viewer=viewer)
