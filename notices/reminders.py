"""Deadline reminders: a plan per campaign, found due from the database, sent through the outbox.

The beat job ``reminders_dispatch_due`` runs every few minutes.  It claims each
due stage with ``SELECT … FOR UPDATE SKIP LOCKED``, writes one Delivery row per
(campaign, student, stage, channel) in bulk (unique in the database, so a
second dispatcher run or a retried task adds nothing), marks the stage
dispatched and, after commit, queues the rows on the outbox (notices/outbox.py),
which claims, sends, retries and requeues them like every other message.
Nothing is ever queued days ahead with an ETA: with Redis such messages come
back in a loop once the visibility timeout passes.
"""

import datetime
import logging

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection as database
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import dateformat, timezone
from django.utils.translation import gettext as _

from verification.models import Campaign, Checklist

from . import channels, outbox
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


def stage_name(stage: ReminderStage) -> str:
    """The name an operator gives a stage (``manage.py remind --stage``): opens, before-7, last-day, manual-12."""
    if stage.kind == ReminderStage.Kind.BEFORE_CLOSE:
        return f"before-{stage.days_before}"
    if stage.kind == ReminderStage.Kind.MANUAL:
        return f"manual-{stage.pk}"
    return stage.kind.replace("_", "-")


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


def stage_recipients(stage: ReminderStage):
    """The student ids a stage is for: its campaign's (or its chosen) students who have not finished."""
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
        written = _insert_deliveries(stage, now=now, grace=now + outbox.lease())
        stage.dispatched_at = now
        stage.save(update_fields=["dispatched_at"])
        outbox.enqueue_pending_on_commit(ReminderStream.name, stage_id=stage.pk)
    logger.info("reminder stage %s dispatched to %s students", stage_id, written)
    return written


def _insert_deliveries(stage: ReminderStage, *, now, grace) -> int:
    """One ``INSERT … SELECT`` from the checklists: no Python object or query per student.

    ``next_attempt_at`` starts as a grace period, so rows whose task never runs
    (a lost message, a crash right after commit) are found again by the requeue.
    """
    try:
        select_sql, select_params = stage_recipients(stage).query.sql_with_params()
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
        first_channel(),
        Delivery.Status.PENDING.value,
        adapt(grace),
        adapt(now),
        *select_params,
    ]
    with database.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def due_stages(*, now, campaign_id: int | None = None) -> tuple[list[int], list[int]]:
    """(stages to dispatch now, planned stages a later due stage supersedes), as the beat job finds them."""
    due = ReminderStage.objects.filter(
        dispatched_at__isnull=True,
        send_at__lte=now,
        campaign__opens_at__lte=now,
        campaign__closes_at__gt=now,
        campaign__closed_at__isnull=True,
    ).order_by("send_at", "id")
    if campaign_id is not None:
        due = due.filter(campaign_id=campaign_id)
    to_send, latest, superseded = [], {}, []
    for pk, of_campaign, kind in due.values_list("pk", "campaign_id", "kind"):
        if kind == ReminderStage.Kind.MANUAL:
            to_send.append(pk)
            continue
        # Several planned stages due at once (a campaign saved late, the beat down for
        # days): students get the latest one, not three identical e-mails in a minute.
        if of_campaign in latest:
            superseded.append(latest[of_campaign])
        latest[of_campaign] = pk
    return [*to_send, *latest.values()], superseded


def reminders_dispatch_due(*, now=None, campaign_id: int | None = None) -> int:
    """Beat job: dispatch every due stage of an open campaign (the outbox's requeue retries the sends)."""
    now = now or timezone.now()
    to_send, superseded = due_stages(now=now, campaign_id=campaign_id)
    if superseded:
        ReminderStage.objects.filter(pk__in=superseded, dispatched_at__isnull=True).update(dispatched_at=now)
        logger.info("reminder stages %s superseded by a later due stage", superseded)
    return sum(stage_dispatch(stage_id=pk, now=now) for pk in to_send)


def channel_order() -> list[str]:
    """The channels a reminder tries, in the school's order (提醒渠道 page, else ``REMINDER_CHANNELS``)."""
    return channels.reminder_channel_order()


def first_channel() -> str:
    return channel_order()[0]


class ReminderStream(outbox.Stream):
    """A reminder to a student who has not finished, on the channel of its row (e-mail today)."""

    name = "reminder"
    model = Delivery
    task = "notices.tasks.deliveries_send"

    def load(self, row_id: int) -> Delivery:
        return Delivery.objects.select_related("student", "campaign").get(pk=row_id)

    def compose(self, row: Delivery, channel: outbox.Channel) -> outbox.OutgoingMessage:
        campaign, student = row.campaign, row.student
        # Checked again at send time: a student may have finished since the dispatch.
        checklist = Checklist.objects.filter(campaign_id=row.campaign_id, student=student).first()
        if checklist is None or checklist.state not in UNFINISHED:
            raise outbox.Skip(_("已完成核对，无需提醒"))
        if not channel.can_reach(student):
            raise outbox.Unreachable(channel.unreachable)
        url = settings.PORTAL_URL.rstrip("/") + f"/check/{campaign.pk}/"
        context = {"student": student, "campaign": campaign, "checklist": checklist, "url": url}
        deadline = dateformat.format(timezone.localtime(campaign.closes_at), _("m月d日 H:i"))
        subject = _("【学籍核对】请在 %(deadline)s 前完成学籍信息核对") % {"deadline": deadline}
        summary = _("%(name)s同学：请在 %(deadline)s 前登录学籍核对系统，核对你在学信网上的学籍信息。") % {
            "name": student.name,
            "deadline": deadline,
        }
        return outbox.OutgoingMessage(
            to=channel.address(student),
            subject=subject,
            body=render_to_string("notices/email/reminder.txt", context),
            summary=summary,
            # An SMS template's variables (the template text itself is approved by the provider).
            options={"variables": {"name": student.name, "deadline": deadline, "link": url}},
        )

    def channel_order(self) -> list[str]:
        return channel_order()

    def message_key(self, row: Delivery) -> dict:
        return {"campaign_id": row.campaign_id, "stage_id": row.stage_id, "student_id": row.student_id}
