"""``manage.py remind CAMPAIGN_ID [--stage NAME | --now] [--dry-run] [--format json]`` (docs/reminders.md).

Sends a campaign's reminders through the same services as the beat job and the
remind-now button (notices/reminders.py), so a stage still reaches each student
once: the due stages (as beat would), one stage, or a remind-now to every
unfinished student.  ``--dry-run`` only plans and writes nothing.
"""

import json
import secrets

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from notices import channels, reminders
from notices.models import Delivery, ReminderStage
from students.models import Student
from verification.models import Campaign, Checklist


def empty_report() -> dict:
    return {
        "students": 0,
        "by_channel": dict.fromkeys(channels.STUDENT_CHANNELS, 0),
        "unreachable": 0,
        "skipped_finished": 0,
        "already_sent": 0,
    }


def add_plan(report: dict, student_ids, finished: int) -> None:
    """Count students (a queryset of ids) on the channel that would reach each first."""
    students = Student.objects.filter(pk__in=student_ids)
    estimate = channels.reach_estimate(students)
    report["students"] += students.count()
    for name, n in estimate["by_channel"].items():
        report["by_channel"][name] = report["by_channel"].get(name, 0) + n
    report["unreachable"] += estimate["unreachable"]
    report["skipped_finished"] += finished


class Command(BaseCommand):
    help = "Send (or with --dry-run only plan) the reminders of a campaign and print a report."

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int)
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--stage", metavar="NAME", help="one stage of the plan: opens, before-7, last-day, manual-ID, or its id"
        )
        which.add_argument("--now", action="store_true", help="remind every unfinished student now")
        parser.add_argument("--dry-run", action="store_true", help="only plan: write and send nothing")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args, campaign_id, stage, now, dry_run, format, **options):
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            raise CommandError(f"no campaign {campaign_id}")
        moment = timezone.now()
        if (stage or now) and not dry_run and not campaign.is_open(moment):
            raise CommandError(f"campaign {campaign_id} is not open: no reminders are sent")
        report = empty_report()
        if now:
            self._remind_now(campaign, report, dry_run=dry_run, now=moment)
        else:
            if stage:
                stages = [self._stage(campaign, stage)]
            else:
                due, _superseded = reminders.due_stages(now=moment, campaign_id=campaign.pk)
                stages = list(ReminderStage.objects.filter(pk__in=due).order_by("send_at", "id"))
            for one in stages:
                self._send_stage(one, report, dry_run=dry_run, now=moment)
        self._print(report, format, dry_run=dry_run)

    def _stage(self, campaign: Campaign, name: str) -> ReminderStage:
        stages = list(campaign.reminder_stages.order_by("send_at", "id"))
        for stage in stages:
            if name in (reminders.stage_name(stage), str(stage.pk)):
                return stage
        known = ", ".join(reminders.stage_name(stage) for stage in stages) or "none"
        raise CommandError(f"campaign {campaign.pk} has no stage {name!r} (its stages: {known})")

    def _send_stage(self, stage: ReminderStage, report: dict, *, dry_run: bool, now) -> None:
        if stage.dispatched_at is not None:
            # Sent already: each student gets a stage once, so nothing is written again.
            reached = Delivery.objects.filter(stage=stage, status=Delivery.Status.SENT)
            report["already_sent"] += reached.values("student_id").distinct().count()
            return
        scope = Checklist.objects.filter(campaign_id=stage.campaign_id)
        if stage.kind == ReminderStage.Kind.MANUAL:
            scope = scope.filter(student_id__in=stage.student_ids)
        finished = scope.exclude(state__in=reminders.UNFINISHED).count()
        add_plan(report, reminders.stage_recipients(stage), finished)
        if not dry_run:
            reminders.stage_dispatch(stage_id=stage.pk, now=now)

    def _remind_now(self, campaign: Campaign, report: dict, *, dry_run: bool, now) -> None:
        checklists = Checklist.objects.filter(campaign=campaign)
        unfinished = checklists.filter(state__in=reminders.UNFINISHED).values_list("student_id", flat=True)
        add_plan(report, unfinished, checklists.exclude(state__in=reminders.UNFINISHED).count())
        if dry_run or not report["students"]:
            return
        reminders.remind_now(
            campaign=campaign,
            student_ids=list(unfinished),
            by=None,
            request_key=f"cli-{secrets.token_urlsafe(18)}",
            now=now,
        )

    def _print(self, report: dict, format: str, *, dry_run: bool) -> None:
        if format == "json":
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        channels_text = ", ".join(f"{name} {n}" for name, n in report["by_channel"].items())
        self.stdout.write(
            f"{'Would remind' if dry_run else 'Reminded'} {report['students']} students ({channels_text}); "
            f"unreachable {report['unreachable']}, finished (skipped) {report['skipped_finished']}, "
            f"already reached by this stage {report['already_sent']}."
        )
