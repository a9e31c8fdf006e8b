"""Department digests: every morning, each department's unverified students as .xlsx.

``digests_build_due`` (beat) builds one Digest per (department, campaign, day),
unique in the database, writes the file into private storage (downloadable
in the portal), and creates one DigestDelivery per secretary e-mail and per
group robot.  Sends are claimed like reminders, so a re-run sends nothing twice.
"""

import datetime
import logging
import secrets
import smtplib
from pathlib import Path

from django.conf import settings
from django.core import mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from students.models import Department, User
from verification import dashboards
from verification.exporters import UnverifiedStudents, write_xlsx
from verification.models import Campaign, Checklist

from . import robots
from .models import DepartmentChannel, Digest, DigestDelivery
from .reminders import MAX_ATTEMPTS

logger = logging.getLogger(__name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class _System:
    """Stands in for a person in the export header of a scheduled file."""

    def get_full_name(self):
        return _("系统（院系日报）")

    def get_username(self):
        return "system"


def digest_dir() -> Path:
    return Path(settings.PRIVATE_ROOT) / "digests"


def digest_path(digest: Digest) -> Path:
    return digest_dir() / digest.storage_name


def _due_today(now) -> bool:
    hour, minute = (int(part) for part in settings.DIGEST_TIME.split(":"))
    local = timezone.localtime(now)
    return (local.hour, local.minute) >= (hour, minute)


def digests_build_due(*, now=None) -> int:
    """Beat job: once the configured time has passed, build today's digests that do not exist yet."""
    now = now or timezone.now()
    if not _due_today(now):
        return 0
    day = timezone.localtime(now).date()
    built = 0
    campaigns = Campaign.objects.filter(opens_at__lte=now, closes_at__gt=now, closed_at__isnull=True)
    for campaign in campaigns:
        department_ids = (
            Checklist.objects.filter(campaign=campaign).values_list("student__department_id", flat=True).distinct()
        )
        for department_id in list(department_ids):
            if digest_build(department_id=department_id, campaign_id=campaign.pk, day=day, now=now):
                built += 1
    return built


def digest_build(*, department_id: int, campaign_id: int, day: datetime.date, now=None) -> Digest | None:
    """Build one digest and its deliveries; None if it already exists (safe to run twice)."""
    now = now or timezone.now()
    department = Department.objects.get(pk=department_id)
    campaign = Campaign.objects.get(pk=campaign_id)
    try:
        with transaction.atomic():
            digest = Digest.objects.create(department=department, campaign=campaign, day=day, created_at=now)
    except IntegrityError:
        return None
    scope = Department.objects.filter(pk=department_id)
    counts = dashboards.counts_of(Checklist.objects.filter(campaign=campaign, student__department=department))
    digest.storage_name = secrets.token_hex(16) + ".xlsx"
    digest_dir().mkdir(parents=True, exist_ok=True)
    with open(digest_path(digest), "wb") as handle:
        digest.row_count = write_xlsx(
            UnverifiedStudents(campaign=campaign, departments=scope), handle, exported_by=_System()
        )
    digest.total = counts.total
    digest.save(update_fields=["storage_name", "row_count", "total"])
    recipients = [
        (DigestDelivery.Channel.EMAIL, email)
        for email in User.objects.filter(departments=department, is_active=True, role=User.Role.SECRETARY)
        .exclude(email="")
        .values_list("email", flat=True)
    ]
    channel = DepartmentChannel.objects.filter(department=department).exclude(robot="").exclude(webhook_url="").first()
    if channel:
        recipients.append((DigestDelivery.Channel.ROBOT, channel.webhook_url))
    DigestDelivery.objects.bulk_create(
        [DigestDelivery(digest=digest, channel=kind, recipient=to) for kind, to in recipients], ignore_conflicts=True
    )
    transaction.on_commit(lambda: enqueue_digest(digest.pk))
    return digest


def enqueue_digest(digest_id: int):
    from .tasks import digest_delivery_send

    for delivery_id in DigestDelivery.objects.filter(
        digest_id=digest_id, status=DigestDelivery.Status.PENDING
    ).values_list("pk", flat=True):
        digest_delivery_send.delay(delivery_id)


def _robot_slot_wait(url: str, now) -> float:
    """Seconds to wait before posting to this robot so it gets at most 20 messages a minute.

    Several departments may share one group robot; posts of the last minute are
    counted from the database, so every worker sees the same budget.
    """
    recent = DigestDelivery.objects.filter(
        channel=DigestDelivery.Channel.ROBOT,
        recipient=url,
        status__in=[DigestDelivery.Status.SENT, DigestDelivery.Status.SENDING],
        claimed_at__gte=now - datetime.timedelta(minutes=1),
    ).order_by("claimed_at")
    claims = list(recent.values_list("claimed_at", flat=True))
    if len(claims) < robots.PER_MINUTE:
        return 0.0
    return (claims[-robots.PER_MINUTE] + datetime.timedelta(minutes=1) - now).total_seconds() + 0.5


def digest_delivery_send(*, delivery_id: int, now=None) -> str:
    now = now or timezone.now()
    pending = DigestDelivery.objects.filter(pk=delivery_id, status=DigestDelivery.Status.PENDING).first()
    if pending and pending.channel == DigestDelivery.Channel.ROBOT:
        wait = _robot_slot_wait(pending.recipient, now)
        if wait > 0:
            from .tasks import digest_delivery_send as task

            task.apply_async((delivery_id,), countdown=wait)
            return "deferred"
    claimed = DigestDelivery.objects.filter(pk=delivery_id, status=DigestDelivery.Status.PENDING).update(
        status=DigestDelivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return "skipped"
    delivery = DigestDelivery.objects.select_related("digest__department", "digest__campaign").get(pk=delivery_id)
    digest = delivery.digest
    try:
        if delivery.channel == DigestDelivery.Channel.EMAIL:
            _send_email(digest, delivery.recipient)
        else:
            _send_robot(digest)
    except (smtplib.SMTPException, OSError, robots.RobotError) as exc:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        if delivery.attempts >= MAX_ATTEMPTS:
            DigestDelivery.objects.filter(pk=delivery_id).update(status=DigestDelivery.Status.FAILED, last_error=reason)
            return "failed"
        wait = datetime.timedelta(minutes=2**delivery.attempts)
        DigestDelivery.objects.filter(pk=delivery_id).update(
            status=DigestDelivery.Status.PENDING, next_attempt_at=now + wait, last_error=reason
        )
        return "retry"
    DigestDelivery.objects.filter(pk=delivery_id).update(
        status=DigestDelivery.Status.SENT, sent_at=timezone.now(), last_error=""
    )
    return "sent"


def _summary(digest: Digest) -> tuple[str, str]:
    done = digest.total - digest.row_count
    rate = round(done * 100 / digest.total) if digest.total else 0
    title = _("%(dept)s 学籍核对日报") % {"dept": digest.department.name}
    text = _(
        "**%(title)s（%(day)s）**\n\n%(campaign)s：已完成 %(done)s / %(total)s 人（%(rate)s%%），未完成 %(left)s 人。\n\n"
        "名单已发到院系秘书邮箱，也可在学籍核对系统下载。"
    ) % {
        "title": title,
        "day": digest.day.isoformat(),
        "campaign": digest.campaign.name,
        "done": done,
        "total": digest.total,
        "rate": rate,
        "left": digest.row_count,
    }
    return title, text


def _send_email(digest: Digest, to: str):
    title, _text = _summary(digest)
    message = mail.EmailMessage(
        subject=f"【{title}】{digest.day.isoformat()}",
        body=render_to_string("notices/email/digest.txt", {"digest": digest, "url": settings.PORTAL_URL}),
        to=[to],
    )
    message.attach(f"未完成核对名单-{digest.department.name}-{digest.day:%Y%m%d}.xlsx", digest_path(digest).read_bytes(), XLSX)
    message.send()


def _send_robot(digest: Digest):
    channel = DepartmentChannel.objects.get(department=digest.department)
    title, text = _summary(digest)
    robots.post(channel.robot, channel.webhook_url, channel.signing_secret, title, text)


def digest_deliveries_requeue_due(*, now=None) -> int:
    from .tasks import digest_delivery_send as task

    now = now or timezone.now()
    ids = list(
        DigestDelivery.objects.filter(status=DigestDelivery.Status.PENDING, next_attempt_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    for delivery_id in ids:
        task.delay(delivery_id)
    return len(ids)
