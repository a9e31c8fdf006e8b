"""Reads of the notices app: what the pages, dashboards and badges show.

Every read of student data is scoped through ``students.permissions``; a
record outside the viewer's scope raises ``DoesNotExist`` here and becomes a
404 in the view.  The writes are in notices/services.py.
"""

from pathlib import Path

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from students.models import Department, Student
from students.permissions import departments_for, has_capability, own_student, students_for
from verification.models import Campaign, Checklist

from . import channels, outbox, robots
from .models import (
    ChannelConfig,
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
    if has_capability(user, "notice.view_drafts"):
        return notices
    if has_capability(user, "notice.read"):
        return notices.filter(published_at__lte=timezone.now())
    return notices.none()


def notice_for_viewer(*, user, notice_id: int) -> Notice:
    """A notice the user may open: staff as above, a student only if it is meant for them."""
    if has_capability(user, "notice.read"):
        return notices_for_staff(user=user).get(pk=notice_id)
    student = own_student(user)
    if student is None:
        raise Notice.DoesNotExist
    return notices_for_student(student=student).select_related("campaign").get(pk=notice_id)


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


# ---------------------------------------------------------------------------
# Notice attachments
# ---------------------------------------------------------------------------


def attachment_dir() -> Path:
    return Path(settings.PRIVATE_ROOT) / "notices"


def attachment_path(attachment: NoticeAttachment) -> Path:
    return attachment_dir() / attachment.storage_name


def attachment_for_viewer(*, user, attachment_id: int) -> NoticeAttachment:
    """An attachment of a notice the user may open, or ``DoesNotExist``."""
    attachment = NoticeAttachment.objects.select_related("notice").get(pk=attachment_id)
    try:
        notice_for_viewer(user=user, notice_id=attachment.notice_id)
    except Notice.DoesNotExist:
        raise NoticeAttachment.DoesNotExist from None
    return attachment


# ---------------------------------------------------------------------------
# Help centre and in-portal messages
# ---------------------------------------------------------------------------


def help_search(*, query: str = "") -> QuerySet[HelpArticle]:
    """Articles whose title, body or keywords contain every word of the query ("5 次" finds "只有 5 次机会")."""
    articles = HelpArticle.objects.all()
    for word in query.split()[:8]:
        articles = articles.filter(Q(title__icontains=word) | Q(body__icontains=word) | Q(keywords__icontains=word))
    return articles


def messages_for(*, user) -> QuerySet[Message]:
    return Message.objects.filter(user=user)


def messages_unread_count(*, user) -> int:
    return Message.objects.filter(user=user, read_at__isnull=True).count()


# ---------------------------------------------------------------------------
# Reminder plan and the delivery log
# ---------------------------------------------------------------------------

DELIVERY_FILTERS = {
    "pending": [Delivery.Status.PENDING, Delivery.Status.SENDING],
    "sent": [Delivery.Status.SENT],
    "failed": [Delivery.Status.FAILED],
    "skipped": [Delivery.Status.SKIPPED],
}


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


def delivery_counts(*, campaign: Campaign) -> dict:
    """Reminder deliveries of a campaign by status: ``{"sent": 12, "pending": 3, …}``."""
    return dict(Delivery.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id")).order_by())


def delivery_summary(*, campaign: Campaign) -> dict:
    counts = delivery_counts(campaign=campaign)
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


def digest_file(digest: Digest) -> bytes:
    """The digest's .xlsx, decrypted; Http404 if the file is gone."""
    from .digests import digest_file_bytes

    return digest_file_bytes(digest)


def secret_masked(secret: str) -> str:
    if not secret:
        return ""
    return secret[:3] + "•" * 8 + (secret[-4:] if len(secret) > 10 else "")


def channel_masked(channel: DepartmentChannel | None) -> dict:
    """What a page may show of a robot's credentials: the address without its token, the secret's ends."""
    if channel is None:
        return {"url": "", "secret": ""}
    return {"url": robots.url_masked(channel.webhook_url), "secret": secret_masked(channel.signing_secret)}


def channels_overview() -> list[tuple[Department, DepartmentChannel | None, dict]]:
    """Every department, its robot (or None) and the robot's masked credentials."""
    channels = {c.department_id: c for c in DepartmentChannel.objects.all()}
    return [
        (department, channels.get(department.pk), channel_masked(channels.get(department.pk)))
        for department in Department.objects.order_by("name")
    ]


# ---------------------------------------------------------------------------
# The school's reminder channels (提醒渠道)
# ---------------------------------------------------------------------------


def reminder_channels() -> dict:
    """Every student channel in the order reminders try them, and what the page may show of each (no secret).

    ``reach``: how many students the channel could reach with its saved settings, whether or not it is enabled.
    """
    configs = {config.name: config for config in ChannelConfig.objects.all()}
    chosen = any(config.enabled for config in configs.values())
    default = [name for name in settings.REMINDER_CHANNELS if name in channels.STUDENT_CHANNELS]
    rows = []
    for index, name in enumerate(channels.STUDENT_CHANNELS):
        config = configs.get(name)
        channel = outbox.CHANNELS[name]()
        if getattr(channel, "config", None) is not None:
            channel.config.enabled = True  # in memory: are the saved settings complete?
        configured = bool(getattr(channel, "ready", True))
        if chosen:
            enabled, position = bool(config and config.enabled), config.position if config else 99
        else:
            enabled, position = name in default, default.index(name) + 1 if name in default else 99
        rows.append(
            {
                "name": name,
                "label": channel.label,
                "enabled": enabled,
                "position": position,
                "index": index,
                "configured": configured,
                "has_settings": name in ("sms", "wecom", "dingtalk"),
                "secret_saved": bool(config and config.secret),
                "provider": config.get_provider_display() if config and config.provider else "",
                "reach": Student.objects.filter(channel.reach_filter()).count() if configured else 0,
            }
        )
    rows.sort(key=lambda row: (not row["enabled"], row["position"], row["index"]))
    enabled = [row for row in rows if row["enabled"]]
    for place, row in enumerate(enabled):
        row["can_up"], row["can_down"] = place > 0, place < len(enabled) - 1
    return {
        "rows": rows,
        "order": [outbox.CHANNELS[name].label for name in channels.reminder_channel_order()],
        "default": not chosen,
        "students": Student.objects.count(),
    }


def send_estimate(*, campaign: Campaign, class_group=None, student_ids=None) -> dict:
    """Who a reminder to the campaign's unfinished students (of a class, or chosen) would reach, and how.

    ``channels.send_estimate`` with, for the page: ``channels`` [(label, n)] in the school's order,
    ``via`` ("企业微信/短信/电子邮件") and ``reached``.
    """
    from .reminders import UNFINISHED  # reminders is the writer's module; only its list of states is read

    checklists = Checklist.objects.filter(campaign=campaign, state__in=UNFINISHED)
    if class_group is not None:
        checklists = checklists.filter(student__class_group=class_group)
    if student_ids is not None:
        checklists = checklists.filter(student_id__in=student_ids)
    order = channels.reminder_channel_order()
    estimate = channels.send_estimate(
        Student.objects.filter(pk__in=checklists.values("student_id")), campaign=campaign, order=order
    )
    estimate["channels"] = [
        (outbox.CHANNELS[name].label, estimate["by_channel"][name]) for name in order if estimate["by_channel"][name]
    ]
    estimate["via"] = "/".join(str(label) for label, _n in estimate["channels"])
    estimate["reached"] = estimate["total"] - estimate["unreachable"]
    return estimate
