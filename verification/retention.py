"""Retention: evidence files and revealed-ID log entries are deleted after a campaign closes.

``RETENTION_DAYS`` (default 180) after a campaign has closed, the evidence
files of its flags and the records of full ID numbers revealed for its
students are deleted by a scheduled task, which also removes evidence files
and photo pack files that no row names (older than a day).  Registrar staff can export the
campaign's records (export kind "campaign-records") before that.
"""

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from students.models import AccessEvent
from students.photos.services import photos_sweep_orphans

from . import evidence as evidence_files
from .models import Campaign, Evidence

logger = logging.getLogger(__name__)


@receiver(post_delete, sender=Evidence)
def _evidence_file_goes_with_its_row(sender, instance, **kwargs):
    # Also fires for evidence deleted with its flag (cascade); the file goes once the delete commits.
    name = instance.storage_name
    transaction.on_commit(lambda: evidence_files.delete_file(name))


def retention_purge(*, now=None) -> dict:
    """Delete what is past its retention time; safe to run any number of times."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=settings.RETENTION_DAYS)
    counts = {"evidence": 0, "reveals": 0, "orphans": 0}
    deleted_now = set()  # their files go on commit: not orphans
    for campaign in Campaign.objects.filter(closed_at__isnull=False, closed_at__lte=cutoff):
        with transaction.atomic():
            doomed = Evidence.objects.filter(flag__checklist__campaign=campaign)
            deleted_now.update(doomed.values_list("storage_name", flat=True))
            counts["evidence"] += doomed.count()
            doomed.delete()
            reveals = AccessEvent.objects.filter(
                action=AccessEvent.Action.ID_REVEAL,
                student__checklists__campaign=campaign,
                at__lte=campaign.closed_at + datetime.timedelta(days=settings.RETENTION_DAYS),
            )
            counts["reveals"] += AccessEvent.objects.filter(pk__in=list(reveals.values_list("pk", flat=True))).delete()[
                0
            ]
    # Files whose rows never committed (an outer transaction rolled back, a killed worker).
    known = deleted_now.union(Evidence.objects.values_list("storage_name", flat=True))
    counts["orphans"] = evidence_files.sweep_orphans(known, now=now.timestamp())
    # Photo packs of imports rolled back by an outer transaction or killed midway.
    counts["orphans"] += photos_sweep_orphans(now=now.timestamp())
    if any(counts.values()):
        logger.info(
            "retention purge: %s evidence files, %s reveal records, %s orphaned files (evidence, photo packs)",
            counts["evidence"],
            counts["reveals"],
            counts["orphans"],
        )
    return counts
