#!/usr/bin/env python
"""Benchmark the big exports against XlsxWriter (constant_memory) writing the same cells.

    .venv/bin/python bench/exports.py [--students 50000] [--repeat 3] [--database-url URL] [--only NAMES]
                                      [--keep] [--json]

Builds a school on a fresh PostgreSQL database through the real roster import
(a generated roster, as ``seed_demo --roster-only`` writes it, then
``manage.py import_roster``) and one campaign over every cohort, created with
``verification.services.campaign_save``.  Every student then gets one flag
forwarded to the registrar (values encrypted as the model stores them, one in
four with a piece of evidence), one answered field, one data-quality finding
and one access-log event, so that each export below has one row per student
(and more):

- ``export_unverified``: the unverified-students list (``unverified``);
- ``export_chsi_corrections``: the CHSI correction list (``chsi-corrections``,
  full ID numbers decrypted, one sheet per authority);
- ``export_department_errors``: the department error list
  (``department-errors``, ID numbers masked, evidence counted);
- ``export_campaign_records``: a campaign's records (``campaign-records``:
  checklists, answers and flags, three sheets of 50,000 rows at 50,000 students);
- ``export_findings``: the data-quality findings (``findings``);
- ``export_access_log``: the access log (``access-log``, timestamps).

These are the registry's exports whose size grows with the school.  Not
benched: the class sign-off sheet and a counsellor's class error list (one
class, or a few; the class list is the department list's code on a smaller
query), the photo corrections (photo flags only; its zip is file copying) and
the source differences (computed in Python from a second roster, not a query).

Each for a registrar over the whole school.  Then, each in its own process so
that peak memory is that process's own, and interleaved, ``--repeat`` times:

(a) ours: the registry's exporter through ``writer.write_xlsx`` (query,
    decryption, masking, formula/text protection, layout, writing);
(b) the floor: XlsxWriter in ``constant_memory`` mode writing the same cells
    (every sheet, title rows, header and data rows, read back from (a)'s file
    with calamine beforehand and loaded before the clock starts), strings as
    text cells with one format, numbers as numbers, dates as dates.  The rows
    are in memory before the clock starts: the floor includes no query.

Both are timed inside their process (the interpreter's and Django's start-up
apart; whole-process wall times in ``wall_s``).  The median of each is
reported, with the ratio a/b and peak memory.  Goal (issue 16): ratio ≤ 1.2×,
memory flat in the number of rows.  The database is dropped afterwards, unless ``--keep``: then it
stays, and a later ``--keep`` run on the same database and size reuses its school (while iterating on one
export, with ``--only``).
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_roster import OUT, PYTHON, drop_database, fresh_database, row, run

# Row name → the exporter's key.
EXPORTS = {
    "export_unverified": "unverified",
    "export_chsi_corrections": "chsi-corrections",
    "export_department_errors": "department-errors",
    "export_campaign_records": "campaign-records",
    "export_findings": "findings",
    "export_access_log": "access-log",
}
GOAL_RATIO = 1.2

SETUP = """
import datetime, hashlib
from django.utils import timezone
from students.models import Cohort, User
from verification import services
from verification.models import Campaign, Checklist, Evidence, Flag
now = timezone.now()
campaign = services.campaign_save(
    campaign=Campaign(name="2025级新生学籍核对", opens_at=now - datetime.timedelta(days=1),
                      closes_at=now + datetime.timedelta(days=14)),
    cohorts=list(Cohort.objects.all()),
)
User.objects.create(username="bench-registrar", first_name="学籍科", role=User.Role.REGISTRAR)
# One forwarded flag per student, on a spread of fields (both authorities, an ID number among them).
CLAIMS = [
    ("XM", "张三", "张叁"), ("CSRQ", "2007-03-04", "2007-04-03"), ("MZ", "汉族", "回族"),
    ("SFZH", "110101200703041234", "110101200704031236"), ("BH", "计算机2501", "计算机2502"),
    ("ZZMM", "群众", "共青团员"), ("KSH", "25110101123456", "25110101123465"),
]
ids = list(Checklist.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True))
BATCH = 5000
for start in range(0, len(ids), BATCH):
    flags = Flag.objects.bulk_create([
        Flag(checklist_id=cid, field_code=CLAIMS[i % len(CLAIMS)][0], recorded_value=CLAIMS[i % len(CLAIMS)][1],
             claimed_value=CLAIMS[i % len(CLAIMS)][2], explanation="以身份证和户口簿为准，见附件",
             status=Flag.Status.FORWARDED, record_version=1)
        for i, cid in enumerate(ids[start:start + BATCH], start)
    ])
    Evidence.objects.bulk_create([
        Evidence(flag=flag, storage_name=f"bench-{flag.pk}", original_name="身份证.jpg", content_type="image/jpeg",
                 size=123456, sha256=hashlib.sha256(str(flag.pk).encode()).hexdigest())
        for flag in flags[::4]
    ])
# One answered field, one finding and one access-log event per student (checklists stay not started, so that
# the unverified list has every student too).
from students.models import AccessEvent, ImportFinding, Student
from verification.models import FieldCheck
registrar = User.objects.get(username="bench-registrar")
students = dict(Checklist.objects.filter(campaign=campaign).values_list("id", "student_id"))
for start in range(0, len(ids), BATCH):
    chunk = ids[start:start + BATCH]
    FieldCheck.objects.bulk_create([
        FieldCheck(checklist_id=cid, field_code="XM", status=FieldCheck.Status.choices[0][0], seen_value="张三",
                   record_version=1, answered_at=now, answered_by=registrar)
        for cid in chunk
    ])
    ImportFinding.objects.bulk_create([
        ImportFinding(student_id=students[cid], field_code="CSRQ", kind=ImportFinding.Kind.choices[0][0],
                      message="出生日期与证件号码中的日期不一致")
        for cid in chunk
    ])
    AccessEvent.objects.bulk_create([
        AccessEvent(at=now, user=registrar, action=AccessEvent.Action.choices[0][0], student_id=students[cid],
                    target="学信网更正清单", detail="导出 1 行", rows=1, ip_address="10.0.0.1")
        for cid in chunk
    ])
from django.db import connection
with connection.cursor() as cursor:
    for table in ("verification_checklist", "verification_flag", "verification_evidence", "verification_fieldcheck",
                  "students_importfinding", "students_accessevent"):
        cursor.execute(f"VACUUM ANALYZE {table}")
print(campaign.pk, len(ids))
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
scope = export_services.resolve_scope(kind=os.environ["BENCH_KIND"], params={"campaign": os.environ["BENCH_CAMPAIGN"]},
                                      user=user)
assert scope.exporter.key == os.environ["BENCH_KIND"]
rows = writer.write_xlsx(scope.exporter, user, scope.params, os.environ["BENCH_TARGET"], exported_by=user)
print(rows, time.perf_counter() - start)
"""


def shell(script: str, *, env, **variables) -> tuple[float, int, str]:
    """Run a script inside Django (``manage.py shell -c``), passing it BENCH_* variables."""
    env = {**env, **{f"BENCH_{key.upper()}": str(value) for key, value in variables.items()}}
    return run([PYTHON, "manage.py", "shell", "-v", "0", "-c", script], env)


# A school already built by an earlier ``--keep`` run: its campaign and number of checklists, or nothing.
KEPT = """
from verification.models import Campaign, Checklist
campaign = Campaign.objects.filter(name="2025级新生学籍核对").order_by("pk").last()
print(campaign.pk if campaign else 0, Checklist.objects.filter(campaign=campaign).count() if campaign else 0)
"""


def kept_school(database_url: str, env) -> tuple[int, int] | None:
    """The campaign and checklist count of a school kept by ``--keep``, if the database holds one."""
    import psycopg2

    try:
        psycopg2.connect(database_url).close()
    except psycopg2.OperationalError:
        return None
    try:
        campaign_id, checklists = map(int, shell(KEPT, env=env)[2].split())
    except SystemExit:  # no tables
        return None
    return (campaign_id, checklists) if campaign_id else None


def measure(
    students: int, database_url: str, repeat: int = 3, *, only: list[str] | None = None, keep: bool = False
) -> list[dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    exports = {name: kind for name, kind in EXPORTS.items() if not only or name in only or kind in only}
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING"}
    # Its own roster file: the import benchmark may be reading roster-N.xlsx at the same time.
    roster = OUT / f"export-roster-{students}.xlsx"
    if not roster.exists():
        run([PYTHON, "manage.py", "seed_demo", "--students", str(students), "--xlsx", roster, "--roster-only"], env)
    files = {name: (OUT / f"{name}.pickle", OUT / f"{name}-floor.xlsx", OUT / f"{name}.xlsx") for name in exports}
    floor = {name: [] for name in exports}
    ours = {name: [] for name in exports}
    kept = kept_school(database_url, env) if keep else None
    if kept and kept[1] != students:
        kept = None
    try:
        if kept:
            campaign_id, checklists = kept
        else:
            fresh_database(database_url)
            run([PYTHON, "manage.py", "migrate", "-v", "0"], env)
            run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
            campaign_id, checklists = map(int, shell(SETUP, env=env)[2].split())
        assert checklists == students, checklists
        for name, kind in exports.items():
            cells, _floor_file, export_file = files[name]
            # One export first, unmeasured: the floor writes its cells.
            shell(EXPORT, env=env, kind=kind, campaign=campaign_id, target=export_file)
            run([PYTHON, "-c", DUMP, export_file, cells], env)
        for _ in range(repeat):
            for name, kind in exports.items():
                cells, floor_file, export_file = files[name]
                floor[name].append(run([PYTHON, "-c", FLOOR_WRITE, cells, floor_file], env))
                ours[name].append(shell(EXPORT, env=env, kind=kind, campaign=campaign_id, target=export_file))
    finally:
        if not keep:
            drop_database(database_url)
        file_bytes = {name: export.stat().st_size for name, (_c, _f, export) in files.items() if export.exists()}
        for paths in files.values():
            for path in paths:
                path.unlink(missing_ok=True)

    def median_inner(runs):
        return statistics.median(float(out.split()[1]) for _s, _mb, out in runs)

    results = []
    for name in exports:
        for _s, _mb, out in ours[name]:
            assert int(out.split()[0]) >= students, f"{name}: {out}"
        results.append(
            row(name, students, median_inner(ours[name]), "xlsxwriter", median_inner(floor[name]), "s",
                max(mb for _s, mb, _out in ours[name]), reference_peak_mb=max(mb for _s, mb, _out in floor[name]),
                wall_s=round(statistics.median(s for s, _mb, _out in ours[name]), 2),
                reference_wall_s=round(statistics.median(s for s, _mb, _out in floor[name]), 2),
                runs=repeat, file_bytes=file_bytes.get(name), goal_ratio=GOAL_RATIO)
        )  # fmt: skip
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollcheck_bench_export"),
    )
    parser.add_argument("--only", help="comma-separated row names or export keys (default: all)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the database afterwards and reuse a school it already holds"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    only = args.only.split(",") if args.only else None
    results = measure(args.students, args.database_url, args.repeat, only=only, keep=args.keep)
    (OUT / f"exports-{args.students}.json").write_text(json.dumps(results, indent=2))
    for result in results:
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"{result['name']:26} ours {result['ours']:7.2f} s  XlsxWriter constant_memory "
                f"{result['reference_value']:7.2f} s  ratio {result['ratio']:5.2f}×  peak {result['peak_mb']} MB "
                f"(XlsxWriter {result['reference_peak_mb']} MB)  (load {result['load_average']})"
            )
    if not args.json:
        print(f"median of {args.repeat} runs, timed inside each process (whole-process wall time: wall_s in --json)")
        print(f"goal: ratio ≤ {GOAL_RATIO}×, memory flat in the number of rows")


if __name__ == "__main__":
    main()
