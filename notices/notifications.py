"""One-off messages to a student about something that happened to them, sent through the outbox.

Reminders go to many students per stage (notices/reminders.py); these go to one
student per event: today, a returned flag closed as 逾期未重新提交 at the
departments' deadline.  A row is written in the transaction that made the
change, unique per (student, event key, channel), so a job run twice tells the
student once; it is sent after the commit on the first channel of the school's
order that reaches them (``reminders.channel_order``), falling back like a reminder.
"""

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from . import outbox
from .models import Notification


def notify_student(*, student, key: str, subject: str, body: str, url: str = "", now=None) -> Notification | None:
    """Write the student's message for event ``key`` once; it is queued when the transaction commits.

    Returns the row written, or None when this event was already written for the student.
    """
    from .reminders import first_channel

    now = now or timezone.now()
    if Notification.objects.filter(student=student, key=key).exists():
        return None
    row, created = Notification.objects.get_or_create(
        student=student,
        key=key,
        channel=first_channel(),
        defaults={
            "subject": subject[:200],
            "body": body[:1000],
            "url": url[:300],
            "created_at": now,
            # A grace period: a row whose task never runs is found again by the requeue.
            "next_attempt_at": now + outbox.lease(),
        },
    )
    if not created:
        return None
    outbox.enqueue_pending_on_commit(NotificationStream.name, pk=row.pk)
    return row


class NotificationStream(outbox.Stream):
    name = "notification"
    model = Notification
    task = "notices.tasks.notifications_send"

    def load(self, row_id: int) -> Notification:
        return Notification.objects.select_related("student").get(pk=row_id)

    def compose(self, row: Notification, channel: outbox.Channel) -> outbox.OutgoingMessage:
        student = row.student
        # The school's SMS template is approved for the deadline reminder only: its wording would be wrong here.
        if channel.name == "sms" or not channel.can_reach(student):
            raise outbox.Unreachable(_("短信模板仅用于核对提醒") if channel.name == "sms" else channel.unreachable)
        link = settings.PORTAL_URL.rstrip("/") + row.url if row.url else settings.PORTAL_URL
        return outbox.OutgoingMessage(
            to=channel.address(student),
            subject=row.subject,
            body=_("%(name)s同学：") % {"name": student.name} + f"\n\n{row.body}\n\n{link}\n",
            summary=row.body,
            options={"variables": {"name": student.name, "deadline": "", "link": link}},
        )

    def channel_order(self) -> list[str]:
        from .reminders import channel_order

        return channel_order()

    def message_key(self, row: Notification) -> dict:
        return {"student_id": row.student_id, "key": row.key}

    def message_content(self, row: Notification) -> dict:
        return {"subject": row.subject, "body": row.body, "url": row.url}
