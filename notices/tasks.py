"""Celery tasks: ids in, thin bodies, safe to run twice."""

from celery import shared_task

from . import digests, reminders


@shared_task
def reminders_dispatch_due() -> int:
    return reminders.reminders_dispatch_due()


@shared_task(acks_late=True)
def deliveries_send(delivery_ids: list[int]) -> dict:
    return reminders.deliveries_send(delivery_ids=delivery_ids)


@shared_task
def digests_build_due() -> int:
    built = digests.digests_build_due()
    digests.digest_deliveries_requeue_due()
    return built


@shared_task(acks_late=True)
def digest_delivery_send(delivery_id: int) -> str:
    return digests.digest_delivery_send(delivery_id=delivery_id)
