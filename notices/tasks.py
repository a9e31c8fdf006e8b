"""Celery tasks: ids in, thin bodies, safe to run twice."""

from celery import shared_task

from . import digests, outbox, reminders, staff_reminders


@shared_task
def reminders_dispatch_due() -> int:
    """The students' reminder stages, then the counsellors' at the departments' stage."""
    return reminders.reminders_dispatch_due() + staff_reminders.counsellor_reminders_due()


@shared_task
def digests_build_due() -> int:
    return digests.digests_build_due()


@shared_task
def outbox_requeue_due() -> int:
    """Beat job: sends due for a retry, deferred by a rate budget, lost with a worker, or refused by the broker."""
    return outbox.requeue_due()


# One task per stream, each taking only ids (registrar_portal/tests/test_security.py): the outbox names them.
@shared_task(acks_late=True)
def deliveries_send(delivery_ids: list[int]) -> dict:
    """Reminders."""
    return outbox.send("reminder", delivery_ids)


@shared_task(acks_late=True)
def digest_deliveries_send(delivery_ids: list[int]) -> dict:
    """Department digests: secretaries' e-mails and group-robot posts."""
    return outbox.send("digest", delivery_ids)


@shared_task(acks_late=True)
def webhook_deliveries_send(delivery_ids: list[int]) -> dict:
    """Signed events to campus systems (notices/webhooks.py)."""
    return outbox.send("webhook", delivery_ids)


@shared_task(acks_late=True)
def notifications_send(notification_ids: list[int]) -> dict:
    """One-off messages to a student about an event of theirs (notices/notifications.py)."""
    return outbox.send("notification", notification_ids)


@shared_task(acks_late=True)
def staff_reminders_send(reminder_ids: list[int]) -> dict:
    """Stage reminders to counsellors (notices/staff_reminders.py)."""
    return outbox.send("staff_reminder", reminder_ids)


@shared_task(acks_late=True)
def digest_delivery_send(delivery_id: int) -> dict:
    """The name digests were queued under before the outbox (still in a broker at an upgrade)."""
    return outbox.send("digest", [delivery_id])
