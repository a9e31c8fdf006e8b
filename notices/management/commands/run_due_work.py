"""Run the scheduled work that is due: what Celery beat does in production, once or in a loop.

    manage.py run_due_work [--loop] [--format json]

The jobs and their intervals are ``settings.CELERY_BEAT_SCHEDULE`` (closing
campaigns, reminder stages, department digests, outbox retries, export and
retention purges).  Once: every job runs now and the command prints what each
did (for cron-only installs and operators).  ``--loop``: each job runs again
when its interval has passed, until stopped; ``bin/start`` runs this beside
the development server, so the embedded setup without Redis sees the whole
product.  Every job is safe to run twice (docs/architecture.md).
"""

import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.module_loading import import_string


def _schedule() -> list[tuple[str, str, float]]:
    return [(name, entry["task"], float(entry["schedule"])) for name, entry in settings.CELERY_BEAT_SCHEDULE.items()]


def run_job(task_path: str):
    """Run one task's function in this process (not through a broker) and return its result."""
    task = import_string(task_path)
    return task.run() if hasattr(task, "run") else task()


class Command(BaseCommand):
    help = "Run the scheduled work that is due (Celery beat's jobs), once or in a loop."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep running each job on its interval")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args, loop, format, **options):
        last_run: dict[str, float] = {}
        while True:
            report = {}
            for name, task_path, interval in _schedule():
                if loop and time.monotonic() - last_run.get(name, -interval) < interval:
                    continue
                last_run[name] = time.monotonic()
                try:
                    report[name] = run_job(task_path)
                except Exception as exc:  # one failing job must not stop the others
                    report[name] = {"error": f"{type(exc).__name__}: {exc}"}
            if report:
                self._print(report, format)
            if not loop:
                return
            time.sleep(5)

    def _print(self, report: dict, format: str):
        if format == "json":
            self.stdout.write(json.dumps(report, ensure_ascii=False, default=str))
            return
        stamp = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
        for name, result in report.items():
            self.stdout.write(f"{stamp} {name}: {json.dumps(result, ensure_ascii=False, default=str)}")
