"""Deadline reminders: a plan per campaign, found due from the database, sent exactly once.

The beat job ``reminders_dispatch_due`` runs every few minutes.  It claims each
due stage with ``SELECT … FOR UPDATE SKIP LOCKED``, writes one Delivery row per
(campaign, student, stage, channel) in bulk (unique in the database, so a
second dispatcher run or a retried task adds nothing), marks the stage
dispatched and, after commit, queues the delivery ids in chunks.  Nothing is
ever queued days ahead with an ETA: with Redis such messages come back in a
loop once the visibility timeout passes.

A send claims its row (PENDING → SENDING) with a conditional UPDATE, so two
workers never send the same row.  Failures go back to PENDING with a later
``next_attempt_at`` a bounded number of times, then FAILED with the reason.
Rows whose task was lost (a worker killed mid-batch) are found again by the
same beat job once their lease or grace period has passed.
"""

import datetime
import logging
import smtplib

from django.conf import settings
from django.core import mail
from django.core.exceptions import EmptyResultSet
from django.db import connection as database
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import dateformat, timezone
from django.utils.translation import gettext as _

from verification.models import Campaign, Checklist

from .models import Delivery, ReminderStage

logger = logging.getLogger(__name__)

DEFAULT_PLAN = (
    (ReminderStage.Kind.OPENS, 0),
    (ReminderStage.Kind.BEFORE_CLOSE, 7),
    (ReminderStage.Kind.BEFORE_CLOSE, 3),
    (ReminderStage.Kind.BEFORE_CLOSE, 1),
    (ReminderStage.Kind.LAST_DAY, 0),
)
UNFINISHED = (Checklist.State.NOT_STARTED, Checklist.State.IN_PROGRESS, Checklist.State.RETURNED)
CHUNK = 500
MAX_ATTEMPTS = 4
BACKOFF = (datetime.timedelta(minutes=1), datetime.timedelta(minutes=5), datetime.timedelta(minutes=15))
# Without a timeout a silent SMTP server holds a claimed row until the task's time limit.
SMTP_TIMEOUT = 30


def _lease() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.REMINDER_LEASE_SECONDS)


def stage_send_at(campaign: Campaign, kind: str, days_before: int) -> datetime.datetime:
    if kind == ReminderStage.Kind.OPENS:
        return campaign.opens_at
    if kind == ReminderStage.Kind.BEFORE_CLOSE:
        return campaign.closes_at - datetime.timedelta(days=days_before)
    # The last day: 09:00 on the closing day, or an hour before closing if it closes earlier.
    closing = timezone.localtime(campaign.closes_at)
    morning = closing.replace(hour=9, minute=0, second=0, microsecond=0)
    return morning if morning < closing else closing - datetime.timedelta(hours=1)


def reminder_plan_ensure(*, campaign: Campaign) -> list[ReminderStage]:
    """Give a new campaign the default plan; move stages not yet sent when the dates change.

    The defaults are created once: a stage the registrar removed stays removed
    when the campaign is edited later.
    """
    planned = campaign.reminder_stages.exclude(kind=ReminderStage.Kind.MANUAL)
    if not planned.exists():
        ReminderStage.objects.bulk_create(
            [
                ReminderStage(
                    campaign=campaign, kind=kind, days_before=days, send_at=stage_send_at(campaign, kind, days)
                )
                for kind, days in DEFAULT_PLAN
            ],
            ignore_conflicts=True,
        )
    for stage in planned.filter(dispatched_at__isnull=True):
        wanted = stage_send_at(campaign, stage.kind, stage.days_before)
        if stage.send_at != wanted:
            stage.send_at = wanted
            stage.save(update_fields=["send_at"])
    return list(planned)


def stage_add(*, campaign: Campaign, days_before: int) -> ReminderStage:
    stage, _created = ReminderStage.objects.get_or_create(
        campaign=campaign,
        kind=ReminderStage.Kind.BEFORE_CLOSE,
        days_before=days_before,
        defaults={"send_at": stage_send_at(campaign, ReminderStage.Kind.BEFORE_CLOSE, days_before)},
    )
    return stage


def stage_remove(*, stage: ReminderStage) -> bool:
    """Only a stage not yet sent can be removed."""
    return ReminderStage.objects.filter(pk=stage.pk, dispatched_at__isnull=True).delete()[0] > 0


def remind_now(*, campaign: Campaign, student_ids: list[int], by, request_key: str, now=None) -> ReminderStage:
    """“Remind these now”: a one-off stage for chosen students, dispatched at once.

    ``request_key`` comes from the form, so a double submit creates one stage.
    """
    now = now or timezone.now()
    stage, created = ReminderStage.objects.get_or_create(
        request_key=request_key,
        defaults={
            "campaign": campaign,
            "kind": ReminderStage.Kind.MANUAL,
            "send_at": now,
            "student_ids": sorted(set(student_ids)),
            "created_by": by,
            "created_at": now,
        },
    )
    if created:
        stage_dispatch(stage_id=stage.pk, now=now)
    return stage


def _recipients(stage: ReminderStage):
    checklists = Checklist.objects.filter(campaign_id=stage.campaign_id, state__in=UNFINISHED)
    if stage.kind == ReminderStage.Kind.MANUAL:
        checklists = checklists.filter(student_id__in=stage.student_ids)
    return checklists.values_list("student_id", flat=True)


def stage_dispatch(*, stage_id: int, now=None) -> int:
    """Write the deliveries of one due stage and queue them; returns how many were written.

    Safe to run twice or concurrently: the stage row is claimed with SKIP LOCKED and
    marked dispatched in the same transaction as its deliveries.
    """
    now = now or timezone.now()
    with transaction.atomic():
        stage = (
            ReminderStage.objects.select_for_update(skip_locked=True)
            .filter(pk=stage_id, dispatched_at__isnull=True)
            .first()
        )
        if stage is None:
            return 0
        written = _insert_deliveries(stage, now=now, grace=now + _lease())
        stage.dispatched_at = now
        stage.save(update_fields=["dispatched_at"])
        transaction.on_commit(lambda: enqueue_stage(stage.pk))
    logger.info("reminder stage %s dispatched to %s students", stage_id, written)
    return written


def _insert_deliveries(stage: ReminderStage, *, now, grace) -> int:
    """One ``INSERT … SELECT`` from the checklists: no Python object or query per student.

    ``next_attempt_at`` starts as a grace period, so rows whose task never runs
    (a lost message, a crash right after commit) are found again by the requeue.
    """
    try:
        select_sql, select_params = _recipients(stage).query.sql_with_params()
    except EmptyResultSet:  # a manual stage with nobody in it
        return 0
    quote, field = database.ops.quote_name, Delivery._meta.get_field
    columns = ", ".join(
        quote(field(name).column)
        for name in (
            "campaign",
            "stage",
            "student",
            "channel",
            "status",
            "attempts",
            "next_attempt_at",
            "created_at",
            "last_error",
        )
    )
    # "WHERE true": SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT.
    sql = (
        f"INSERT INTO {quote(Delivery._meta.db_table)} ({columns}) "
        f"SELECT %s, %s, recipient.student_id, %s, %s, 0, %s, %s, '' FROM ({select_sql}) recipient WHERE true "
        "ON CONFLICT DO NOTHING"
    )
    adapt = database.ops.adapt_datetimefield_value
    params = [
        stage.campaign_id,
        stage.pk,
        Delivery.Channel.EMAIL.value,
        Delivery.Status.PENDING.value,
        adapt(grace),
        adapt(now),
        *select_params,
    ]
    with database.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def enqueue_stage(stage_id: int):
    ids = list(
        Delivery.objects.filter(stage_id=stage_id, status=Delivery.Status.PENDING)
        .order_by("id")
        .values_list("id", flat=True)
    )
    _enqueue(ids)


def _enqueue(ids: list[int]):
    from .tasks import deliveries_send

    for start in range(0, len(ids), CHUNK):
        deliveries_send.delay(ids[start : start + CHUNK])


def reminders_dispatch_due(*, now=None) -> int:
    """Beat job: dispatch every due stage of an open campaign, then requeue lost or retrying sends."""
    now = now or timezone.now()
    due = ReminderStage.objects.filter(
        dispatched_at__isnull=True,
        send_at__lte=now,
        campaign__opens_at__lte=now,
        campaign__closes_at__gt=now,
        campaign__closed_at__isnull=True,
    ).order_by("send_at", "id")
    to_send, latest, superseded = [], {}, []
    for pk, campaign_id, kind in due.values_list("pk", "campaign_id", "kind"):
        if kind == ReminderStage.Kind.MANUAL:
            to_send.append(pk)
            continue
        # Several planned stages due at once (a campaign saved late, the beat down for
        # days): students get the latest one, not three identical e-mails in a minute.
        if campaign_id in latest:
            superseded.append(latest[campaign_id])
        latest[campaign_id] = pk
    if superseded:
        ReminderStage.objects.filter(pk__in=superseded, dispatched_at__isnull=True).update(dispatched_at=now)
        logger.info("reminder stages %s superseded by a later due stage", superseded)
    dispatched = sum(stage_dispatch(stage_id=pk, now=now) for pk in [*to_send, *latest.values()])
    deliveries_requeue_due(now=now)
    return dispatched


def deliveries_requeue_due(*, now=None) -> int:
    """Queue again what is due for a retry, and what a lost task or killed worker left behind."""
    now = now or timezone.now()
    with transaction.atomic():
        stale = Q(status=Delivery.Status.SENDING, claimed_at__lt=now - _lease())
        due = Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(stale | due)
            .order_by("id")
            .values_list("id", "status", "attempts")[:50_000]
        )
        # A row whose sends keep dying (a worker killed or timed out every time) stops
        # after MAX_ATTEMPTS like any other failure instead of coming back forever.
        exhausted = {
            pk for pk, status, attempts in rows if status == Delivery.Status.SENDING and attempts >= MAX_ATTEMPTS
        }
        ids = [pk for pk, _status, _attempts in rows if pk not in exhausted]
        if exhausted:
            Delivery.objects.filter(pk__in=exhausted).update(
                status=Delivery.Status.FAILED, last_error=_("发送多次中断（进程退出或超时），已停止重试")
            )
        # Push the grace period forward so the next run does not queue them again meanwhile.
        Delivery.objects.filter(pk__in=ids).update(status=Delivery.Status.PENDING, next_attempt_at=now + _lease())
        transaction.on_commit(lambda: _enqueue(ids))
    return len(ids)


def _claim(delivery_id: int, now) -> bool:
    return bool(
        Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    )


def _finish(delivery_id: int, claimed_at, **fields):
    """Record the outcome of our own claim only.

    The claim time is the token: if the requeue took the row back meanwhile
    (PENDING, same claim) the outcome still lands, so a message that did go out
    is not sent again; if another send has claimed it since, it is theirs.
    """
    Delivery.objects.filter(
        pk=delivery_id, claimed_at=claimed_at, status__in=[Delivery.Status.SENDING, Delivery.Status.PENDING]
    ).update(**fields)


def _close(connection):
    try:
        connection.close()
    except (smtplib.SMTPException, OSError):
        pass


def deliveries_send(*, delivery_ids: list[int], now=None) -> dict:
    """Send a chunk of deliveries over one SMTP connection; each row is claimed first."""
    counts = {"sent": 0, "failed": 0, "retry": 0, "skipped": 0}
    connection = None
    try:
        for delivery_id in delivery_ids:
            moment = now or timezone.now()
            if not _claim(delivery_id, moment):
                continue
            delivery = Delivery.objects.select_related("student", "campaign").get(pk=delivery_id)
            student = delivery.student
            checklist = Checklist.objects.filter(campaign_id=delivery.campaign_id, student=student).first()
            if checklist is None or checklist.state not in UNFINISHED:
                _finish(delivery_id, moment, status=Delivery.Status.SKIPPED, last_error=_("已完成核对，无需提醒"))
                counts["skipped"] += 1
                continue
            if not student.email:
                _finish(delivery_id, moment, status=Delivery.Status.SKIPPED, last_error=_("没有电子邮箱"))
                counts["skipped"] += 1
                continue
            try:
                if connection is None:
                    connection = mail.get_connection(timeout=settings.EMAIL_TIMEOUT or SMTP_TIMEOUT)
                    # Opened here, the connection serves the whole chunk; left to send()
                    # it would be opened and closed for every message.
                    connection.open()
                _message(delivery, checklist, connection).send()
            except (smtplib.SMTPException, OSError) as exc:
                _close(connection)  # a refused or broken connection is not reused
                connection = None
                outcome = _failed(delivery, exc, moment)
                counts[outcome] += 1
                continue
            _finish(delivery_id, moment, status=Delivery.Status.SENT, sent_at=timezone.now(), last_error="")
            counts["sent"] += 1
    finally:
        if connection is not None:
            _close(connection)
    return counts


def _failed(delivery: Delivery, exc: Exception, now) -> str:
    reason = f"{type(exc).__name__}: {exc}"[:500]
    if delivery.attempts >= MAX_ATTEMPTS:
        _finish(delivery.pk, now, status=Delivery.Status.FAILED, last_error=reason)
        logger.warning("reminder delivery %s failed for good: %s", delivery.pk, reason)
        return "failed"
    wait = BACKOFF[min(delivery.attempts - 1, len(BACKOFF) - 1)]
    _finish(delivery.pk, now, status=Delivery.Status.PENDING, next_attempt_at=now + wait, last_error=reason)
    return "retry"


def _message(delivery: Delivery, checklist: Checklist, connection) -> mail.EmailMessage:
    campaign, student = delivery.campaign, delivery.student
    context = {
        "student": student,
        "campaign": campaign,
        "checklist": checklist,
        "url": settings.PORTAL_URL.rstrip("/") + f"/check/{campaign.pk}/",
    }
    subject = _("【学籍核对】请在 %(deadline)s 前完成学籍信息核对") % {
        "deadline": dateformat.format(timezone.localtime(campaign.closes_at), _("m月d日 H:i"))
    }
    return mail.EmailMessage(
        subject=subject,
        body=render_to_string("notices/email/reminder.txt", context),
        to=[student.email],
        connection=connection,
        headers={"Auto-Submitted": "auto-generated"},
    )


def delivery_counts(*, campaign: Campaign) -> dict:
    from django.db.models import Count

    return dict(Delivery.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id")).order_by())
