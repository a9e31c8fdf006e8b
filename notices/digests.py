"""Department digests: every morning, each department's unverified students as .xlsx.

``digests_build_due`` (beat) builds one Digest per (department, campaign, day),
unique in the database, writes the file into private storage (encrypted like
stored exports, verification/exports/storage.py; downloadable in the portal),
and creates one DigestDelivery per secretary e-mail and per group robot, sent through the outbox (notices/outbox.py) like reminders, so a
re-run sends nothing twice.  Posts to one robot are counted from the database
(several departments may share a group), so at most 20 go out in any minute
across all workers.
"""

import datetime
import logging
import secrets
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from students.models import Department, User
from verification import dashboards
from verification.exports import registry, storage
from verification.models import Campaign, Checklist

from . import outbox, robots
from .models import DepartmentChannel, Digest, DigestDelivery

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


def digest_file_bytes(digest: Digest) -> bytes:
    """The digest's .xlsx, decrypted; Http404 if the file is gone."""
    return storage.read_export(digest_path(digest))


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
    # While students check, and then until the departments' deadline (院系汇总截止): the secretaries
    # review, chase the returned flags and sign off; a department that signed off gets no more.
    campaigns = Campaign.objects.filter(opens_at__lte=now).filter(
        Q(closes_at__gt=now, closed_at__isnull=True) | Q(departments_close_at__gt=now)
    )
    for campaign in campaigns:
        department_ids = (
            Checklist.objects.filter(campaign=campaign, department__isnull=False)
            .exclude(department__in=campaign.sign_offs.filter(withdrawn_at__isnull=True).values("department"))
            .values_list("department_id", flat=True)
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
    storage_name = secrets.token_hex(16) + ".xlsx.enc"  # encrypted at rest, like stored exports
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
            outbox.enqueue_pending_on_commit(DigestStream.name, digest_id=digest.pk)
    except IntegrityError:
        (digest_dir() / storage_name).unlink(missing_ok=True)
        return None
    except BaseException:
        (digest_dir() / storage_name).unlink(missing_ok=True)
        raise
    return digest


def _write_file(digest: Digest, campaign: Campaign, department: Department):
    scope = Department.objects.filter(pk=department.pk)
    counts = dashboards.counts_of(Checklist.objects.filter(campaign=campaign, department=department))
    # The department's list of unverified students, the same exporter as the workspace's button; encrypted at rest.
    digest.row_count = storage.write_export(
        registry.get("unverified"),
        {"campaign": campaign, "departments": list(scope)},
        digest_path(digest),
        exported_by=_System(),
    )
    digest.total = counts.total
    digest.save(update_fields=["row_count", "total"])


def _robot(department_id: int) -> DepartmentChannel | None:
    """The department's group robot, if it has one set up."""
    channel = DepartmentChannel.objects.filter(department_id=department_id).exclude(robot="").first()
    return channel if channel and channel.webhook_url else None


def _deliveries_create(digest: Digest, department: Department, now):
    recipients = [
        (DigestDelivery.Channel.EMAIL, email)
        for email in User.objects.filter(departments=department, is_active=True, role=User.Role.SECRETARY)
        .exclude(email="")
        .values_list("email", flat=True)
    ]
    robot = _robot(department.pk)
    if robot:
        recipients.append((DigestDelivery.Channel.ROBOT, robots.recipient_key(robot.webhook_url)))
    # A grace period: a row whose task is lost is queued again by the outbox's requeue.
    grace = now + outbox.lease()
    DigestDelivery.objects.bulk_create(
        [DigestDelivery(digest=digest, channel=kind, recipient=to, next_attempt_at=grace) for kind, to in recipients],
        ignore_conflicts=True,
    )


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


class DigestStream(outbox.Stream):
    """A digest to a secretary's e-mail (with the file) or to the department's group robot (the summary)."""

    name = "digest"
    model = DigestDelivery
    task = "notices.tasks.digest_deliveries_send"
    address_field = "recipient"  # robots shared by departments share their minute budget

    def load(self, row_id: int) -> DigestDelivery:
        return DigestDelivery.objects.select_related("digest__department", "digest__campaign").get(pk=row_id)

    def compose(self, row: DigestDelivery, channel: outbox.Channel) -> outbox.OutgoingMessage:
        digest = row.digest
        title, text = _summary(digest)
        if row.channel == DigestDelivery.Channel.ROBOT:
            robot = _robot(digest.department_id)
            if robot is None:
                raise outbox.Skip(channel.unreachable)
            return outbox.OutgoingMessage(
                to=channel.address(robot),
                subject=title,
                body=text,
                options={"robot": robot.robot, "secret": robot.signing_secret},
            )
        prefix = _("未完成核对名单")  # outside the f-string, where makemessages finds it
        return outbox.OutgoingMessage(
            to=channel.address(row.recipient),
            subject=_("【%(title)s】%(day)s") % {"title": title, "day": digest.day.isoformat()},
            body=render_to_string("notices/email/digest.txt", {"digest": digest, "url": settings.PORTAL_URL}),
            attachments=(
                (
                    f"{prefix}-{digest.department.name}-{digest.day:%Y%m%d}.xlsx",
                    digest_file_bytes(digest),
                    XLSX,
                ),
            ),
        )
