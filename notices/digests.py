"""Department digests: every morning, each department's unverified students as .xlsx.

``digests_build_due`` (beat) builds one Digest per (department, campaign, day),
unique in the database, writes the file into private storage (downloadable
in the portal), and creates one DigestDelivery per secretary e-mail and per
group robot.  Sends are claimed like reminders, so a re-run sends nothing twice.
Posts to one robot URL are counted from the database (several departments may
share a group), so at most 20 go out in any minute across all workers.
"""

import datetime
import logging
import secrets
import smtplib
from pathlib import Path

from django.conf import settings
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from students.models import Department, User
from verification import dashboards
from verification.exports.exporters import UnverifiedStudents, write_xlsx
from verification.models import Campaign, Checklist

from . import robots
from .models import Delivery, DepartmentChannel, Digest, DigestDelivery
from .reminders import MAX_ATTEMPTS, _lease

logger = logging.getLogger(__name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# DigestDelivery reuses the reminders' statuses (its field's choices); it has no Status of its own.
Status = Delivery.Status


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
            Checklist.objects.filter(campaign=campaign, student__department__isnull=False)
            .values_list("student__department_id", flat=True)
            .order_by()
            .distinct()
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
    storage_name = secrets.token_hex(16) + ".xlsx"
    try:
        # One transaction for the row, the file's numbers and the deliveries: a build
        # that dies half-way leaves nothing behind, so the next run builds it again
        # instead of finding a digest that was never sent.  A concurrent builder waits
        # on the unique index and then gets IntegrityError.
        with transaction.atomic():
            digest = Digest.objects.create(
                department=department, campaign=campaign, day=day, created_at=now, storage_name=storage_name
            )
            _write_file(digest, campaign, department)
            _deliveries_create(digest, department, now)
            transaction.on_commit(lambda: enqueue_digest(digest.pk))
    except IntegrityError:
        (digest_dir() / storage_name).unlink(missing_ok=True)
        return None
    except BaseException:
        (digest_dir() / storage_name).unlink(missing_ok=True)
        raise
    return digest


def _write_file(digest: Digest, campaign: Campaign, department: Department):
    scope = Department.objects.filter(pk=department.pk)
    counts = dashboards.counts_of(Checklist.objects.filter(campaign=campaign, student__department=department))
    digest_dir().mkdir(parents=True, exist_ok=True)
    with open(digest_path(digest), "wb") as handle:
        digest.row_count = write_xlsx(
            UnverifiedStudents(campaign=campaign, departments=scope), handle, exported_by=_System()
        )
    digest.total = counts.total
    digest.save(update_fields=["row_count", "total"])


def _deliveries_create(digest: Digest, department: Department, now):
    recipients = [
        (DigestDelivery.Channel.EMAIL, email)
        for email in User.objects.filter(departments=department, is_active=True, role=User.Role.SECRETARY)
        .exclude(email="")
        .values_list("email", flat=True)
    ]
    channel = DepartmentChannel.objects.filter(department=department).exclude(robot="").exclude(webhook_url="").first()
    if channel:
        recipients.append((DigestDelivery.Channel.ROBOT, channel.webhook_url))
    # A grace period, as for reminders: a row whose task is lost is queued again by the requeue.
    grace = now + _lease()
    DigestDelivery.objects.bulk_create(
        [DigestDelivery(digest=digest, channel=kind, recipient=to, next_attempt_at=grace) for kind, to in recipients],
        ignore_conflicts=True,
    )


def enqueue_digest(digest_id: int):
    _enqueue(DigestDelivery.objects.filter(digest_id=digest_id, status=Status.PENDING).values_list("pk", flat=True))


def _enqueue(delivery_ids):
    from .tasks import digest_delivery_send

    for delivery_id in delivery_ids:
        digest_delivery_send.delay(delivery_id)


def _robot_slot_wait(url: str, now) -> float:
    """Seconds to wait before posting to this robot so it gets at most 20 messages a minute.

    Several departments may share one group robot; posts of the last minute are
    counted from the database, so every worker sees the same budget.
    """
    recent = DigestDelivery.objects.filter(
        channel=DigestDelivery.Channel.ROBOT,
        recipient=url,
        claimed_at__gt=now - datetime.timedelta(minutes=1),
    ).order_by("claimed_at")
    claims = list(recent.values_list("claimed_at", flat=True))
    if len(claims) < robots.PER_MINUTE:
        return 0.0
    return (claims[-robots.PER_MINUTE] + datetime.timedelta(minutes=1) - now).total_seconds() + 0.5


def _robot_lock(url: str):
    # Check-then-claim must not interleave between workers posting to the same robot.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"notices.robot:{url}"])


def _claim(delivery_id: int, now) -> tuple[bool, float]:
    """(claimed, seconds to wait): a robot post is claimed only inside its minute's budget."""
    pending = DigestDelivery.objects.filter(pk=delivery_id, status=Status.PENDING)
    with transaction.atomic():
        row = pending.values_list("channel", "recipient").first()
        if row is None:
            return False, 0.0
        if row[0] == DigestDelivery.Channel.ROBOT:
            _robot_lock(row[1])
            now = now or timezone.now()  # read after the lock: the claim time is the post time
            wait = _robot_slot_wait(row[1], now)
            if wait > 0:
                # Due again then, so the requeue finds it even if the deferred message is lost.
                pending.update(next_attempt_at=now + datetime.timedelta(seconds=wait))
                return False, wait
        now = now or timezone.now()
        claimed = pending.update(status=Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
        return bool(claimed), 0.0


def digest_delivery_send(*, delivery_id: int, now=None) -> str:
    claimed, wait = _claim(delivery_id, now)
    if wait > 0:
        from .tasks import digest_delivery_send as task

        # In-process (no broker) a countdown is ignored and the task would call itself
        # at once, forever; the requeue picks the row up when its minute has passed.
        if not task.app.conf.task_always_eager:
            task.apply_async((delivery_id,), countdown=wait)
        return "deferred"
    if not claimed:
        return "skipped"
    delivery = DigestDelivery.objects.select_related("digest__department", "digest__campaign").get(pk=delivery_id)
    digest, mine = delivery.digest, DigestDelivery.objects.filter(pk=delivery_id, claimed_at=delivery.claimed_at)
    try:
        if delivery.channel == DigestDelivery.Channel.EMAIL:
            _send_email(digest, delivery.recipient)
        elif not _send_robot(digest):
            mine.update(status=Status.SKIPPED, last_error=_("院系已停用群机器人"))
            return "skipped"
    except (smtplib.SMTPException, OSError, robots.RobotError) as exc:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        if delivery.attempts >= MAX_ATTEMPTS:
            mine.update(status=Status.FAILED, last_error=reason)
            return "failed"
        wait = datetime.timedelta(minutes=2**delivery.attempts)
        mine.update(status=Status.PENDING, next_attempt_at=delivery.claimed_at + wait, last_error=reason)
        return "retry"
    mine.update(status=Status.SENT, sent_at=timezone.now(), last_error="")
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
        subject=_("【%(title)s】%(day)s") % {"title": title, "day": digest.day.isoformat()},
        body=render_to_string("notices/email/digest.txt", {"digest": digest, "url": settings.PORTAL_URL}),
        to=[to],
    )
    prefix = _("未完成核对名单")  # outside the f-string, where makemessages finds it
    message.attach(
        f"{prefix}-{digest.department.name}-{digest.day:%Y%m%d}.xlsx", digest_path(digest).read_bytes(), XLSX
    )
    message.send()


def _send_robot(digest: Digest) -> bool:
    """Post the summary; False when the department no longer has a robot."""
    channel = (
        DepartmentChannel.objects.filter(department=digest.department).exclude(robot="").exclude(webhook_url="").first()
    )
    if channel is None:
        return False
    title, text = _summary(digest)
    robots.post(channel.robot, channel.webhook_url, channel.signing_secret, title, text)
    return True


def digest_deliveries_requeue_due(*, now=None) -> int:
    """Queue again what is due for a retry or a deferred robot post, and what a killed worker left."""
    now = now or timezone.now()
    with transaction.atomic():
        stale = Q(status=Status.SENDING, claimed_at__lt=now - _lease())
        due = Q(status=Status.PENDING, next_attempt_at__lte=now)
        rows = list(
            DigestDelivery.objects.select_for_update(skip_locked=True)
            .filter(stale | due)
            .order_by("id")
            .values_list("id", "status", "attempts")
        )
        exhausted = {pk for pk, status, attempts in rows if status == Status.SENDING and attempts >= MAX_ATTEMPTS}
        ids = [pk for pk, _status, _attempts in rows if pk not in exhausted]
        if exhausted:
            DigestDelivery.objects.filter(pk__in=exhausted).update(
                status=Status.FAILED, last_error=_("发送多次中断（进程退出或超时），已停止重试")
            )
        # Pushed forward so that the next run does not queue them again while they wait.
        DigestDelivery.objects.filter(pk__in=ids).update(status=Status.PENDING, next_attempt_at=now + _lease())
        transaction.on_commit(lambda: _enqueue(ids))
    return len(ids)
