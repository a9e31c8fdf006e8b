#!/usr/bin/env python
"""Benchmark the unverified-students export against openpyxl writing the same rows.

    .venv/bin/python bench/export_unverified.py [--students 50000] [--repeat 3] [--database-url URL]

Builds a school on a fresh PostgreSQL database through the real roster import
(a generated roster, as ``seed_demo --roster-only`` writes it, then
``manage.py import_roster``) and one campaign over every cohort, created with
``verification.services.campaign_save``: every student is unverified.  Then,
each in its own process so that peak memory is that process's own, and
alternating, ``--repeat`` times:

(a) openpyxl's write-only mode writing the same rows × 6 columns as plain
    values (the raw limit; the rows are dumped once beforehand);
(b) ``UnverifiedStudents`` through ``write_xlsx`` for a registrar over all
    departments (query, formula/text protection, writing).

The median of each is reported, with the ratio b/a (goal ≤ 2×) and peak memory
(goal < 300 MB).
"""

import argparse
import json
import os
import statistics
from urllib.parse import urlparse

from import_roster import OUT, PYTHON, fresh_database, run  # the benches share their process helpers

SETUP = """
import datetime
from django.utils import timezone
from students.models import Cohort, User
from verification import services
from verification.models import Campaign
now = timezone.now()
campaign = services.campaign_save(
    campaign=Campaign(name="2025级新生学籍核对", opens_at=now - datetime.timedelta(days=1),
                      closes_at=now + datetime.timedelta(days=14)),
    cohorts=list(Cohort.objects.all()),
)
User.objects.create(username="bench-registrar", first_name="学籍科", role=User.Role.REGISTRAR)
print(campaign.pk, campaign.checklists.count())
"""

# The rows the export writes, as plain values, for the raw writer to read back.
DUMP = """
import json, os
from students.models import User
from verification.exports import services as export_services
scope = export_services.resolve_scope(kind="unverified", params={"campaign": int(os.environ["BENCH_CAMPAIGN"])},
                                      user=User.objects.get(username="bench-registrar"))
sheet = next(scope.exporter.sheets())
with open(os.environ["BENCH_TARGET"], "w", encoding="utf-8") as out:
    for row in sheet.rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\\n")
"""

RAW_WRITE = """
import json, sys, time
from openpyxl import Workbook
with open(sys.argv[1], encoding="utf-8") as source:
    rows = [json.loads(line) for line in source]
start = time.perf_counter()
workbook = Workbook(write_only=True)
sheet = workbook.create_sheet("未完成核对")
for row in rows:
    sheet.append(row)
workbook.save(sys.argv[2])
print(len(rows), round(time.perf_counter() - start, 3))
"""

EXPORT = """
import os, time
start = time.perf_counter()
from students.models import User
from verification.exports import exporters
from verification.exports import services as export_services
user = User.objects.get(username="bench-registrar")
campaign = int(os.environ["BENCH_CAMPAIGN"])
scope = export_services.resolve_scope(kind="unverified", params={"campaign": campaign}, user=user)
rows = exporters.write_xlsx(scope.exporter, os.environ["BENCH_TARGET"], exported_by=user)
print(rows, round(time.perf_counter() - start, 3))
"""


def shell(script: str, *, env, **variables) -> tuple[float, int, str]:
    """Run a script inside Django (``manage.py shell -c``), passing it BENCH_* variables."""
    env = {**env, **{f"BENCH_{key.upper()}": str(value) for key, value in variables.items()}}
    return run([PYTHON, "manage.py", "shell", "-v", "0", "-c", script], env)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollcheck_bench_export"),
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": args.database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING"}
    # Its own roster file: the import benchmark may be reading roster-N.xlsx at the same time.
    roster = OUT / f"export-roster-{args.students}.xlsx"
    dump = OUT / f"unverified-{args.students}.jsonl"
    raw_file, export_file = OUT / "raw-write.xlsx", OUT / "export-unverified.xlsx"

    print(f"Building a school of {args.students} students on {urlparse(args.database_url).path.lstrip('/')}")
    run([PYTHON, "manage.py", "seed_demo", "--students", str(args.students), "--xlsx", roster, "--roster-only"], env)
    fresh_database(args.database_url)
    run([PYTHON, "manage.py", "migrate", "-v", "0"], env)
    run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
    campaign_id, checklists = map(int, shell(SETUP, env=env)[2].split())
    assert checklists == args.students, checklists
    shell(DUMP, env=env, campaign=campaign_id, target=dump)

    raw, ours = [], []
    for _ in range(args.repeat):
        raw.append(run([PYTHON, "-c", RAW_WRITE, dump, raw_file], env))
        ours.append(shell(EXPORT, env=env, campaign=campaign_id, target=export_file))
    for _s, _mb, out in raw + ours:
        assert int(out.split()[0]) == args.students, out

    def summary(runs):
        return (
            statistics.median(s for s, _mb, _out in runs),
            max(mb for _s, mb, _out in runs),
            statistics.median(float(out.split()[1]) for _s, _mb, out in runs),
        )

    raw_s, raw_mb, raw_inner = summary(raw)
    export_s, export_mb, export_inner = summary(ours)
    result = {
        "students": args.students,
        "columns": 6,
        "runs": args.repeat,
        "openpyxl_write_s": round(raw_s, 2),
        "openpyxl_write_in_process_s": raw_inner,
        "openpyxl_write_peak_mb": raw_mb,
        "export_s": round(export_s, 2),
        "export_in_process_s": export_inner,
        "export_peak_mb": export_mb,
        "export_ratio_to_write": round(export_s / raw_s, 2),
        "export_ratio_in_process": round(export_inner / raw_inner, 2),
        "file_bytes": export_file.stat().st_size,
    }
    (OUT / f"export_unverified-{args.students}.json").write_text(json.dumps(result, indent=2))
    print(f"openpyxl write-only, plain values  {raw_s:7.2f} s  {raw_mb:5d} MB  (writing alone {raw_inner:.2f} s)")
    print(
        f"UnverifiedStudents via write_xlsx   {export_s:7.2f} s  {export_mb:5d} MB  ratio {export_s / raw_s:.2f}×"
        f"  (in process {export_inner:.2f} s, ratio {export_inner / raw_inner:.2f}×)"
    )
    print(f"median of {args.repeat} whole-process runs; goal: ratio ≤ 2.0× and peak < 300 MB at 50,000 students")


if __name__ == "__main__":
    main()
