from celery import shared_task

from . import services
from .exports import services as export_services


@shared_task
def campaigns_close_due() -> int:
    """Beat job: close campaigns past their deadline (safe to run twice)."""
    return services.campaigns_close_due()


@shared_task
def export_build(export_id: int) -> None:
    """Build a queued export's file (safe to run twice: a built export is left alone)."""
    export_services.export_build(export_id=export_id)


@shared_task
def exports_purge_expired() -> int:
    """Beat job: delete expired export files."""
    return export_services.exports_purge_expired()


@shared_task
def retention_purge() -> dict:
    """Daily: delete evidence files and reveal records past their retention time."""
    from . import retention

    return retention.retention_purge()
