from celery import shared_task

from . import services


@shared_task
def campaigns_close_due() -> int:
    """Beat job: close campaigns past their deadline (safe to run twice)."""
    return services.campaigns_close_due()
