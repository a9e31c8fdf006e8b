from django.core.management.base import BaseCommand, CommandError

from verification import dashboards
from verification.models import Campaign


class Command(BaseCommand):
    help = (
        "Recompute the dashboards' counts (ChecklistCount, FinishCount) from the checklists.  Database triggers "
        "keep them exact; this repairs them after the triggers were bypassed (a partial restore)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", type=int, help="only this campaign's (its id)")

    def handle(self, *args, campaign, **options):
        chosen = None
        if campaign is not None:
            chosen = Campaign.objects.filter(pk=campaign).first()
            if chosen is None:
                raise CommandError(f"No campaign #{campaign}")
        dashboards.rebuild_counts(campaign=chosen)
        self.stdout.write("Rebuilt the dashboard counts" + (f" of campaign #{campaign}" if chosen else "") + ".")
