"""The outbox: one way to send every outgoing message (reminders, department digests, group-robot posts).

Each kind of message is a *stream* with a table of its own (``Delivery`` for
reminders, ``DigestDelivery`` for digests; both ``OutboxRow``), whose unique
constraint allows one row per recipient and stage.  Everything after the row
is written is done here, the same way for every stream:

- **Write, then queue.**  Rows are written PENDING with ``next_attempt_at`` a
  lease ahead (a grace period) in the transaction that decides to send them;
  their ids are queued after the commit through ``registrar_portal.celery.enqueue``.
  A broker that is down is logged and the rows are made due at once: the
  request that wrote them still succeeds, and ``requeue_due`` sends them.
- **Claim.**  A send takes its row PENDING → SENDING with a conditional UPDATE
  (``attempts + 1``, ``claimed_at`` = now), so two workers, a retried task or a
  message delivered twice never send one row twice.
- **Record our own outcome only.**  ``claimed_at`` is the claim's token: an
  outcome lands only on the claim that produced it.
- **One retry policy.**  ``RetryLater`` puts the row back PENDING, due after
  ``BACKOFF`` (from the claim), at most ``MAX_ATTEMPTS`` sends in all, then
  FAILED with the reason; ``PermanentFailure`` is FAILED at once; a recipient
  the channel cannot reach, or a message no longer needed, is SKIPPED with why.
- **Requeue** (beat, ``requeue_due``): rows due for a retry and rows whose claim
  outlived the lease (a killed worker) are queued again; a row whose sends keep
  dying stops after ``MAX_ATTEMPTS`` like any failure.
- **Rate budgets.**  A channel with ``per_minute`` (group robots: 20) is
  claimed only inside its budget per address, counted from the rows (all
  workers see the same count); over budget the row waits for the minute.
  A channel with a ``minute_budget()`` (SMS: the account's sends per minute)
  is claimed only inside that budget for all its addresses together, counted
  the same way across every stream's table; the excess stays PENDING and is
  sent in the next minute, once.

Channels
--------
A channel is one class in ``CHANNELS`` (add it with ``@register``): a ``name``
(the rows' ``channel`` column), a ``label``, ``address(recipient)`` /
``can_reach(recipient)`` for a student or an address, and ``send(message)``,
which returns on success and raises ``RetryLater`` or ``PermanentFailure``.
A stream's ``compose`` builds the ``OutgoingMessage`` for its row and channel
(raising ``Unreachable`` when the channel cannot reach the recipient).  When a
channel cannot reach a recipient or fails for good, the stream's ``fallback``
writes the row of the next channel, which is sent the same way: reminders try
the channels of ``settings.REMINDER_CHANNELS`` in order, so a student gets a
stage's reminder on one channel at most, and the delivery log shows each
channel tried.  The SMS, WeCom and DingTalk channels of the next issue plug in
as one class each and a name in that setting: they are in notices/channels.py
(registered when this module is imported), and the school's order comes from
``ChannelConfig`` there when the registrar has set one.  A channel may also
``Defer`` a send to a later time (SMS in quiet hours): the row goes back to
PENDING, due then, without using an attempt, and the requeue sends it.
"""

import datetime
import logging
import math
import smtplib
from dataclasses import dataclass, field

from django.conf import settings
from django.core import mail
from django.db import connection as database
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import robots
from .models import OutboxRow, SendStatus

logger = logging.getLogger(__name__)

Status = SendStatus
MAX_ATTEMPTS = 4
# After the 1st, 2nd and 3rd failed send; the 4th failure is final.
BACKOFF = (datetime.timedelta(minutes=1), datetime.timedelta(minutes=5), datetime.timedelta(minutes=15))
CHUNK = 500  # ids per queued task: one message per chunk, not per student
REQUEUE_LIMIT = 50_000  # rows per stream and requeue run
# Without a timeout a silent SMTP server holds a claimed row until the task's time limit.
SMTP_TIMEOUT = 30


def lease() -> datetime.timedelta:
    """How long a claim may last before the row counts as lost (a killed worker)."""
    return datetime.timedelta(seconds=settings.REMINDER_LEASE_SECONDS)


# ---------------------------------------------------------------------------
# Messages, outcomes and channels
# ---------------------------------------------------------------------------


@dataclass
class OutgoingMessage:
    """What a channel sends: ``to`` is the channel's own address (an e-mail, a webhook URL …)."""

    to: str
    subject: str
    body: str
    summary: str = ""  # the short Markdown form for chat channels; ``body`` when empty
    attachments: tuple = ()  # (file name, bytes, content type)
    options: dict = field(default_factory=dict)  # channel specifics (a robot's kind and signing secret)


class SendError(Exception):
    """A send that did not go out; the text is kept as the row's reason."""


class RetryLater(SendError):
    """Might work later (a 4xx answer, a refused connection): retried under the policy."""


class PermanentFailure(SendError):
    """Will not work by trying again (the recipient does not exist): failed at once."""


class Defer(SendError):
    """Not now, and not a failure (SMS in quiet hours): back to PENDING, due ``until``, no attempt used."""

    def __init__(self, message: str, *, until: datetime.datetime):
        super().__init__(message)
        self.until = until


class Skip(Exception):
    """Not to be sent after all (the student finished); the text says why."""


class Unreachable(Skip):
    """This channel cannot reach the recipient (no e-mail address): skipped here, the next channel is tried."""


class Channel:
    name = ""
    label = ""
    per_minute: int | None = None  # sends to one address in any minute, across every worker
    unreachable = gettext_lazy("无法联系")  # the reason a skipped row shows

    def address(self, recipient) -> str:
        """How this channel reaches a recipient (a student, or an address already); "" if it cannot."""
        raise NotImplementedError

    def can_reach(self, recipient) -> bool:
        return bool(self.address(recipient))

    def reach_filter(self) -> Q | None:
        """The students this channel can reach as a filter on Student (for estimates); None: ask ``can_reach``."""
        return None

    def send(self, message: OutgoingMessage) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """End what the channel kept open for a batch (an SMTP connection)."""

    @classmethod
    def minute_budget(cls) -> int | None:
        """Sends on this channel in any minute, to every address and by every worker together; None: no limit."""
        return None


CHANNELS: dict[str, type[Channel]] = {}


def register(channel: type[Channel]) -> type[Channel]:
    CHANNELS[channel.name] = channel
    return channel


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


@register
class EmailChannel(Channel):
    """SMTP through Django's mail backend; one connection per batch."""

    name = "email"
    label = gettext_lazy("电子邮件")
    unreachable = gettext_lazy("没有电子邮箱")

    def __init__(self):
        self.connection = None

    def address(self, recipient) -> str:
        return recipient if isinstance(recipient, str) else (getattr(recipient, "email", "") or "")

    def reach_filter(self) -> Q:
        return ~Q(email="")

    def send(self, message: OutgoingMessage) -> None:
        email = mail.EmailMessage(
            subject=message.subject,
            body=message.body,
            to=[message.to],
            headers={"Auto-Submitted": "auto-generated"},
        )
        for name, content, content_type in message.attachments:
            email.attach(name, content, content_type)
        try:
            if self.connection is None:
                self.connection = mail.get_connection(timeout=settings.EMAIL_TIMEOUT or SMTP_TIMEOUT)
                # Opened here, the connection serves the whole batch; left to send()
                # it would be opened and closed for every message.
                self.connection.open()
            email.connection = self.connection
            email.send()
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            codes = [code for code, _text in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):  # 5xx: this mailbox does not exist
                raise PermanentFailure(_reason(exc)) from exc
            raise RetryLater(_reason(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()  # a refused or broken connection is not reused
            raise RetryLater(_reason(exc)) from exc

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except (smtplib.SMTPException, OSError):
                pass
            self.connection = None


@register
class RobotChannel(Channel):
    """A WeCom or DingTalk group robot (notices/robots.py); the message options name which."""

    name = "robot"
    label = gettext_lazy("群机器人")
    per_minute = robots.PER_MINUTE
    unreachable = gettext_lazy("院系已停用群机器人")

    def address(self, recipient) -> str:
        # A DepartmentChannel (its decrypted webhook URL), or a URL already.
        if isinstance(recipient, str):
            return recipient
        return recipient.webhook_url if getattr(recipient, "robot", "") else ""

    def send(self, message: OutgoingMessage) -> None:
        try:
            robots.post(
                message.options["robot"],
                message.to,
                message.options.get("secret", ""),
                message.subject,
                message.summary or message.body,
            )
        except robots.RobotError as exc:
            raise RetryLater(_reason(exc)) from exc


# ---------------------------------------------------------------------------
# Streams: one kind of message each, with its table
# ---------------------------------------------------------------------------


class Stream:
    """One kind of outgoing message: its rows' model and how a row becomes an OutgoingMessage."""

    name = ""
    model: type[OutboxRow]
    task = ""  # the Celery task that sends a batch of this stream's ids
    # The column that names the recipient's address, for rate budgets; None: no budget is kept.
    address_field: str | None = None

    def load(self, row_id: int) -> OutboxRow:
        return self.model.objects.get(pk=row_id)

    def compose(self, row: OutboxRow, channel: Channel) -> OutgoingMessage:
        """The message for this row on this channel; raise ``Skip`` (``Unreachable``) when it is not to be sent."""
        raise NotImplementedError

    # Channel fallback: a stream that sends one message per channel names its channel order and
    # which columns make a row the same message; the row for the next channel is written here, once.
    def channel_order(self) -> list[str]:
        """The channels this stream's rows try, in order; empty: a row has no other channel."""
        return []

    def next_channel(self, row: OutboxRow) -> str | None:
        order = self.channel_order()
        following = order[order.index(row.channel) + 1 :] if row.channel in order else []
        return following[0] if following else None

    def message_key(self, row: OutboxRow) -> dict:
        """The columns (besides the channel) that make a row on another channel the same message."""
        raise NotImplementedError

    def message_content(self, row: OutboxRow) -> dict:
        """Columns the row on the next channel copies."""
        return {}

    def fallback(self, row: OutboxRow, *, now) -> OutboxRow | None:
        """A new row for the next channel after ``row``'s, which cannot reach the recipient; None: no other."""
        channel = self.next_channel(row)
        if channel is None:
            return None
        following, created = self.model.objects.get_or_create(
            channel=channel,
            **self.message_key(row),
            defaults={"created_at": now, "next_attempt_at": now + lease(), **self.message_content(row)},
        )
        return following if created else None


STREAMS = {
    "reminder": "notices.reminders.ReminderStream",
    "digest": "notices.digests.DigestStream",
    "webhook": "notices.webhooks.WebhookStream",
    "notification": "notices.notifications.NotificationStream",
    "staff_reminder": "notices.staff_reminders.StaffReminderStream",
}
_streams: dict[str, Stream] = {}


def stream(name: str) -> Stream:
    if name not in _streams:
        _streams[name] = import_string(STREAMS[name])()
    return _streams[name]


# ---------------------------------------------------------------------------
# Queueing
# ---------------------------------------------------------------------------


def enqueue(stream_name: str, ids, *, countdown: float | None = None) -> bool:
    """Queue rows for sending, in chunks; False if the broker refused (the rows are then due at once)."""
    # Here, not at the top: the admin imports this module, and Celery cost every command's start-up.
    from registrar_portal.celery import enqueue as enqueue_task

    task = import_string(stream(stream_name).task)
    ids = list(ids)
    refused = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        if not enqueue_task(task, chunk, countdown=countdown):
            refused += chunk
    if refused:
        # Due now: the next requeue run (beat) queues them once the broker is back.
        stream(stream_name).model.objects.filter(pk__in=refused, status=Status.PENDING).update(
            next_attempt_at=timezone.now()
        )
    return not refused


def enqueue_pending_on_commit(stream_name: str, **where) -> None:
    """Once the transaction commits, queue the stream's PENDING rows that match ``where``."""

    def queue():
        rows = stream(stream_name).model.objects.filter(status=Status.PENDING, **where).order_by("id")
        enqueue(stream_name, rows.values_list("id", flat=True))

    transaction.on_commit(queue)


def requeue_due(*, now=None, streams=None) -> int:
    """Beat job: queue again what is due for a retry or a deferred post, and what a lost task left behind."""
    now = now or timezone.now()
    return sum(_requeue(stream(name), now) for name in (streams or STREAMS))


def _requeue(outbox: Stream, now) -> int:
    rows_of = outbox.model.objects
    with transaction.atomic():
        stale = Q(status=Status.SENDING, claimed_at__lt=now - lease())
        due = Q(status=Status.PENDING, next_attempt_at__lte=now)
        rows = list(
            rows_of.select_for_update(skip_locked=True)
            .filter(stale | due)
            .order_by("id")
            .values_list("id", "status", "attempts")[:REQUEUE_LIMIT]
        )
        # A row whose sends keep dying (a worker killed or timed out every time) stops
        # after MAX_ATTEMPTS like any other failure instead of coming back forever.
        exhausted = {pk for pk, status, attempts in rows if status == Status.SENDING and attempts >= MAX_ATTEMPTS}
        ids = [pk for pk, _status, _attempts in rows if pk not in exhausted]
        if exhausted:
            rows_of.filter(pk__in=exhausted).update(
                status=Status.FAILED, last_error=_("发送多次中断（进程退出或超时），已停止重试")
            )
        # Pushed a lease forward so that the next run does not queue them again meanwhile.
        rows_of.filter(pk__in=ids).update(status=Status.PENDING, next_attempt_at=now + lease())
        transaction.on_commit(lambda: enqueue(outbox.name, ids))
    return len(ids)


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------


def send(stream_name: str, ids, *, now=None) -> dict:
    """Send a batch of one stream's rows; each is claimed first, so running it twice sends nothing twice."""
    outbox = stream(stream_name)
    counts = {"sent": 0, "failed": 0, "retry": 0, "skipped": 0, "deferred": 0}
    channels: dict[str, Channel] = {}
    deferred = []
    # Read once a batch: the channels with a budget of their own (SMS), and until when each is spent.
    budgets = Budgets({name: limit for name, kind in CHANNELS.items() if (limit := kind.minute_budget())})
    try:
        for row_id in ids:
            claimed_at, wait = _claim(outbox, row_id, now, budgets)
            if wait > 0:
                deferred.append((row_id, wait))
                counts["deferred"] += 1
                continue
            if claimed_at is None:
                continue
            row = outbox.load(row_id)
            if row.channel not in CHANNELS:
                _finish(outbox, row_id, claimed_at, status=Status.FAILED, last_error=_("未知的发送渠道"))
                counts["failed"] += 1
                continue
            channel = channels.get(row.channel) or channels.setdefault(row.channel, CHANNELS[row.channel]())
            counts[_send_one(outbox, row, channel, claimed_at)] += 1
    finally:
        for channel in channels.values():
            channel.close()
    # In-process (no broker) a countdown is ignored and the task would run again at
    # once, forever: there the requeue picks the row up when its minute has passed.
    if deferred and not import_string(outbox.task).app.conf.task_always_eager:
        # One message per second of waiting, not one per row: a spent SMS budget may defer thousands.
        by_wait: dict[int, list[int]] = {}
        for row_id, wait in deferred:
            by_wait.setdefault(math.ceil(wait), []).append(row_id)
        for wait, row_ids in by_wait.items():
            enqueue(stream_name, row_ids, countdown=wait)
    return counts


def _send_one(outbox: Stream, row: OutboxRow, channel: Channel, claimed_at) -> str:
    try:
        channel.send(outbox.compose(row, channel))
    except Skip as skip:
        _finish(outbox, row.pk, claimed_at, status=Status.SKIPPED, last_error=str(skip))
        if isinstance(skip, Unreachable):
            _fall_back(outbox, row)
        return "skipped"
    except Defer as exc:
        # Not an attempt: the claim's count is given back, so the row keeps all its retries for later.
        _finish(
            outbox,
            row.pk,
            claimed_at,
            status=Status.PENDING,
            next_attempt_at=exc.until,
            attempts=F("attempts") - 1,
            last_error=str(exc),
        )
        return "deferred"
    except PermanentFailure as exc:
        _finish(outbox, row.pk, claimed_at, status=Status.FAILED, last_error=str(exc))
        logger.warning("%s %s failed for good: %s", outbox.name, row.pk, exc)
        _fall_back(outbox, row)
        return "failed"
    except RetryLater as exc:
        if row.attempts >= MAX_ATTEMPTS:
            _finish(outbox, row.pk, claimed_at, status=Status.FAILED, last_error=str(exc))
            logger.warning("%s %s failed after %s attempts: %s", outbox.name, row.pk, row.attempts, exc)
            _fall_back(outbox, row)
            return "failed"
        wait = BACKOFF[min(row.attempts - 1, len(BACKOFF) - 1)]
        _finish(
            outbox, row.pk, claimed_at, status=Status.PENDING, next_attempt_at=claimed_at + wait, last_error=str(exc)
        )
        return "retry"
    _finish(outbox, row.pk, claimed_at, status=Status.SENT, sent_at=timezone.now(), last_error="")
    return "sent"


def _fall_back(outbox: Stream, row: OutboxRow):
    """The recipient is not reached on this channel: write and queue the row of the next one, if any.

    The next row is unique like every row, so a send that runs twice still
    writes it once; and it is only written once this one has given up, so a
    recipient gets the message on one channel at most.
    """
    following = outbox.fallback(row, now=timezone.now())
    if following is not None:
        enqueue(outbox.name, [following.pk])


@dataclass
class Budgets:
    """A batch's channel budgets (sends per minute, all addresses) and the moment each is spent until."""

    limits: dict[str, int]
    spent_until: dict[str, datetime.datetime] = field(default_factory=dict)


def _claim(outbox: Stream, row_id: int, now, budgets: Budgets | None = None) -> tuple[datetime.datetime | None, float]:
    """(the claim's time or None if not ours, seconds to wait when over a rate budget)."""
    budgets = budgets or Budgets({})
    pending = outbox.model.objects.filter(pk=row_id, status=Status.PENDING)
    with transaction.atomic():
        budgeted, limited = None, None
        if outbox.address_field or budgets.limits:
            row = pending.values_list("channel", outbox.address_field or "channel").first()
            if row is None:
                return None, 0.0
            channel = CHANNELS.get(row[0])
            if outbox.address_field and channel is not None and channel.per_minute:
                budgeted = (channel, row[1])
                _lock(f"notices.outbox:{channel.name}:{row[1]}")
            if row[0] in budgets.limits:
                limited = row[0]
                # Count-then-claim of one channel must not interleave between workers either.
                _lock(f"notices.outbox:{limited}")
        moment = now or timezone.now()  # read after the lock: the claim time is the send time
        waits = []
        if budgeted:
            waits.append(_budget_wait(outbox, *budgeted, moment))
        if limited:
            until = budgets.spent_until.get(limited)
            if until is None or until <= moment:
                wait = _channel_wait(limited, budgets.limits[limited], moment)
                until = moment + datetime.timedelta(seconds=wait)
                budgets.spent_until[limited] = until
            waits.append((until - moment).total_seconds())
        wait = max(waits, default=0.0)
        if wait > 0:
            # Due again then, so the requeue finds it even if the deferred message is lost.
            pending.update(next_attempt_at=moment + datetime.timedelta(seconds=wait))
            return None, wait
        claimed = pending.update(status=Status.SENDING, claimed_at=moment, attempts=F("attempts") + 1)
    return (moment if claimed else None), 0.0


def _channel_wait(channel_name: str, limit: int, now) -> float:
    """Seconds until the channel may take another send: its claims of the last minute, in every stream's table.

    A claim that ended SKIPPED sent nothing (a finished student, no number) and is not counted.
    """
    since = now - datetime.timedelta(minutes=1)
    recent = [
        stream(name)
        .model.objects.filter(channel=channel_name, claimed_at__gt=since)
        .exclude(status=Status.SKIPPED)
        .order_by("-claimed_at")
        .values_list("claimed_at", flat=True)
        for name in STREAMS
    ]
    if sum(rows.count() for rows in recent) < limit:
        return 0.0
    newest = sorted((moment for rows in recent for moment in rows[:limit]), reverse=True)
    return (newest[limit - 1] + datetime.timedelta(minutes=1) - now).total_seconds() + 0.5


def _lock(key: str):
    # Check-then-claim must not interleave between workers sending to the same address.
    if database.vendor == "postgresql":
        with database.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])


def _budget_wait(outbox: Stream, channel: type[Channel], address: str, now) -> float:
    """Seconds until this address may take another send, counted from the claims of the last minute."""
    claims = list(
        outbox.model.objects.filter(
            channel=channel.name,
            **{outbox.address_field: address},
            claimed_at__gt=now - datetime.timedelta(minutes=1),
        )
        .order_by("claimed_at")
        .values_list("claimed_at", flat=True)
    )
    if len(claims) < channel.per_minute:
        return 0.0
    return (claims[-channel.per_minute] + datetime.timedelta(minutes=1) - now).total_seconds() + 0.5


def _finish(outbox: Stream, row_id: int, claimed_at, **fields):
    """Record the outcome of our own claim only.

    If the requeue took the row back meanwhile (PENDING, same claim) the outcome
    still lands, so a message that did go out is not sent again; if another send
    has claimed it since, it is theirs.
    """
    outbox.model.objects.filter(pk=row_id, claimed_at=claimed_at, status__in=[Status.SENDING, Status.PENDING]).update(
        **fields
    )


# The student channels (SMS, WeCom, DingTalk, console) register themselves; imported last, they use the above.
from . import channels as _student_channels  # noqa: E402, F401
