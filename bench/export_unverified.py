#!/usr/bin/env python
"""Benchmark the unverified-students export against XlsxWriter (constant_memory) writing the same cells.

    .venv/bin/python bench/export_unverified.py [--students 50000] [--repeat 3] [--database-url URL] [--json]

Builds a school on a fresh PostgreSQL database through the real roster import
(a generated roster, as ``seed_demo --roster-only`` writes it, then
``manage.py import_roster``) and one campaign over every cohort, created with
``verification.services.campaign_save``: every student is unverified.  Then,
each in its own process so that peak memory is that process's own, and
interleaved, ``--repeat`` times:

(a) ours: the registry's ``unverified`` exporter through ``writer.write_xlsx``
    for a registrar over all departments (query, formula/text protection,
    layout, writing);
(b) the floor: XlsxWriter in ``constant_memory`` mode writing the same cells
    (every sheet, title rows, header and data rows, read back from (a)'s file
    with calamine beforehand and loaded before the clock starts), strings as
    text cells with one format, numbers as numbers, dates as dates.

Both are timed inside their process (the interpreter's and Django's start-up
apart; whole-process wall times in ``wall_s``).  The median of each is
reported, with the ratio a/b and peak memory.  Goal (issue 16): ratio ≤ 1.2×,
memory flat in the number of rows.  The database is dropped afterwards.
"""

import argparse
import json
import os
import statistics

from import_roster import OUT, PYTHON, drop_database, fresh_database, row, run  # the benches share their helpers

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

# The cells of our file, sheet by sheet, for the floor to write again (outside any timing).
DUMP = """
import pickle, sys, python_calamine
book = python_calamine.CalamineWorkbook.from_path(sys.argv[1])
sheets = [(name, book.get_sheet_by_name(name).to_python()) for name in book.sheet_names]
with open(sys.argv[2], "wb") as out:
    pickle.dump(sheets, out)
print(sum(len(rows) for _name, rows in sheets))
"""

FLOOR_WRITE = """
import datetime, pickle, sys, time
import xlsxwriter
with open(sys.argv[1], "rb") as source:
    sheets = pickle.load(source)
start = time.perf_counter()
workbook = xlsxwriter.Workbook(sys.argv[2], {"constant_memory": True, "strings_to_numbers": False})
text = workbook.add_format({"num_format": "@", "border": 1})
number = workbook.add_format({"border": 1})
date = workbook.add_format({"num_format": "yyyy-mm-dd", "border": 1})
for name, rows in sheets:
    sheet = workbook.add_worksheet(name)
    write_string, write_number, write_datetime = sheet.write_string, sheet.write_number, sheet.write_datetime
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if value == "":
                continue
            if isinstance(value, str):
                write_string(r, c, value, text)
            elif isinstance(value, (int, float)):
                write_number(r, c, value, number)
            elif isinstance(value, (datetime.date, datetime.datetime)):
                write_datetime(r, c, value, date)
            else:
                write_string(r, c, str(value), text)
workbook.close()
print(sum(len(rows) for _name, rows in sheets), time.perf_counter() - start)
"""

EXPORT = """
import os, time
start = time.perf_counter()
from students.models import User
from verification.exports import services as export_services
from verification.exports import writer
user = User.objects.get(username="bench-registrar")
scope = export_services.resolve_scope(kind="unverified", params={"campaign": os.environ["BENCH_CAMPAIGN"]}, user=user)
rows = writer.write_xlsx(scope.exporter, user, scope.params, os.environ["BENCH_TARGET"], exported_by=user)
print(rows, time.perf_counter() - start)
"""


def shell(script: str, *, env, **variables) -> tuple[float, int, str]:
    """Run a script inside Django (``manage.py shell -c``), passing it BENCH_* variables."""
    env = {**env, **{f"BENCH_{key.upper()}": str(value) for key, value in variables.items()}}
    return run([PYTHON, "manage.py", "shell", "-v", "0", "-c", script], env)


def measure(students: int, database_url: str, repeat: int = 3) -> list[dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING"}
    # Its own roster file: the import benchmark may be reading roster-N.xlsx at the same time.
    roster = OUT / f"export-roster-{students}.xlsx"
    cells = OUT / f"unverified-{students}.pickle"
    floor_file, export_file = OUT / "floor-write.xlsx", OUT / "export-unverified.xlsx"
    if not roster.exists():
        run([PYTHON, "manage.py", "seed_demo", "--students", str(students), "--xlsx", roster, "--roster-only"], env)
    fresh_database(database_url)
    try:
        run([PYTHON, "manage.py", "migrate", "-v", "0"], env)
        run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
        campaign_id, checklists = map(int, shell(SETUP, env=env)[2].split())
        assert checklists == students, checklists
        # One export first, unmeasured: the floor writes its cells.
        shell(EXPORT, env=env, campaign=campaign_id, target=export_file)
        run([PYTHON, "-c", DUMP, export_file, cells], env)
        floor, ours = [], []
        for _ in range(repeat):
            floor.append(run([PYTHON, "-c", FLOOR_WRITE, cells, floor_file], env))
            ours.append(shell(EXPORT, env=env, campaign=campaign_id, target=export_file))
    finally:
        drop_database(database_url)
        cells.unlink(missing_ok=True)
        floor_file.unlink(missing_ok=True)
    for _s, _mb, out in ours:
        assert int(out.split()[0]) == students, out
    file_bytes = export_file.stat().st_size
    export_file.unlink()

    def median_inner(runs):
        return statistics.median(float(out.split()[1]) for _s, _mb, out in runs)

    return [
        row("export_unverified", students, median_inner(ours), "xlsxwriter", median_inner(floor), "s",
            max(mb for _s, mb, _out in ours), reference_peak_mb=max(mb for _s, mb, _out in floor),
            wall_s=round(statistics.median(s for s, _mb, _out in ours), 2),
            reference_wall_s=round(statistics.median(s for s, _mb, _out in floor), 2),
            runs=repeat, file_bytes=file_bytes),
    ]  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollcheck_bench_export"),
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.students, args.database_url, args.repeat)
    (OUT / f"export_unverified-{args.students}.json").write_text(json.dumps(results, indent=2))
    for result in results:
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"{result['name']} ours {result['ours']:7.2f} s  XlsxWriter constant_memory "
                f"{result['reference_value']:7.2f} s  ratio {result['ratio']:5.2f}×  peak {result['peak_mb']} MB "
                f"(XlsxWriter {result['reference_peak_mb']} MB)  (load {result['load_average']})"
            )
    if not args.json:
        print(f"median of {args.repeat} runs, timed inside each process (whole-process wall time: wall_s in --json)")
        print("goal: ratio ≤ 1.2×, memory flat in the number of rows")


if __name__ == "__main__":
    main()
